"""Things that were broken, in a real browser: each test failed before its fix."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from browser_people import Crowd, wait_js
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser


def test_a_thread_that_cannot_be_shown_does_not_blank_the_next(crowd: Crowd) -> None:
    """Opening a missing thread, or someone's private one, then a good thread: its messages, live posts
    and answers appear without a reload."""
    ada, bob = crowd.sign_in("Ada"), crowd.sign_in("Bob")
    secret = ada.create_thread("Ada's notes", visibility="private")
    good = ada.create_thread("Open to all")
    ada.post("The first message.")
    for bad in ("no-such-thread", secret):
        bob.page.evaluate("id => { location.hash = '#/t/' + encodeURIComponent(id); }", bad)
        expect(bob.page.locator("main h1").first).to_have_text("This thread cannot be shown")
        bob.open_thread(good)
        expect(bob.message("The first message.")).to_be_visible()
    ada.post("A live one, after Bob came back.")
    expect(bob.message("A live one, after Bob came back.")).to_be_visible()
    crowd.check_clean()


def test_the_openapi_page_needs_no_cdn(crowd: Crowd) -> None:
    """The interactive /docs page loaded its scripts from a CDN and was blank offline: it is gone;
    the API's description stays at /openapi.json."""
    base = crowd.server.base_url
    assert httpx.get(f"{base}/docs").status_code == 404
    assert httpx.get(f"{base}/redoc").status_code == 404
    assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "Choir"


def test_the_phase_trace_reads_as_prose(crowd: Crowd) -> None:
    ada = crowd.sign_in("Ada")
    shown = ada.page.evaluate(
        """async () => {
            const { readable } = await import('/js/MessageFlow.js');
            return readable('> **Grey herons** nest high [1]\\n## Priors\\n[1] Herons nest in alders (0.63)');
        }"""
    )
    assert shown == "Grey herons nest high [1]\nPriors\n[1] Herons nest in alders (similarity 0.63)"


def test_a_reward_says_how_much_and_why_and_the_balance_follows(browser: Browser, tmp_path: Path) -> None:
    """With two-second epochs: a new message is rewarded once its epoch ends; the toast names the
    amount and the reason, and the balance in the top bar moves without a reload."""
    from browser_people import Crowd as People
    from harness import run_server

    with run_server(tmp_path / "data", epoch_seconds=2, sweep_interval_s=0.2) as server:
        people = People(browser, server)
        try:
            ada = people.sign_in("Ada")
            before = ada.balance_units().inner_text()
            ada.create_thread("Rewarded")
            ada.post("A message worth a reward.")
            toast = ada.page.locator("#toasts").get_by_text("for your new messages in epoch")
            expect(toast).to_be_visible(timeout=30_000)
            assert "CHOIR" in toast.inner_text()
            expect(ada.balance_units()).not_to_have_text(before)
            # The reward is also in the notifications view, with its amount and its reason, after a reload.
            ada.page.reload()
            wait_js(ada.page, "window.__choir && window.__choir.ready")
            ada.page.click("#notifications-button")
            reward = ada.page.locator("li.notification[data-kind='reward']").first
            expect(reward).to_contain_text(
                re.compile(r"You received [0-9.,]+ CHOIR: your new messages \(epoch \d+\)")
            )
            people.check_clean()
        finally:
            people.close()


def test_a_newcomer_is_not_advised_a_stake_they_cannot_pay(crowd: Crowd) -> None:
    ada, bob = crowd.sign_in("Ada"), crowd.sign_in("Bob")
    thread = ada.create_thread("Expensive to join")
    bob.open_thread(thread)
    hints = bob.page.locator("#stake-hints")
    expect(hints).to_contain_text("more than your balance of 10 CHOIR: you can stake up to 10 CHOIR")
    use = bob.page.get_by_role("button", name="Use the most you can stake")
    use.click()
    expect(bob.page.locator("#spec-stake")).to_have_value("10")
    crowd.check_clean()


def test_spec_notes_survive_a_reload_and_name_their_people(crowd: Crowd) -> None:
    """The spec, vote and outcome notes between the messages were drawn only live, and a spec
    author who was not yet a co-author showed as a raw address to the voters."""
    ada, ben = crowd.sign_in("Ada"), crowd.sign_in("Ben")
    tid = ada.create_thread("Notes that stay")
    ada.post("The thread's first message.")
    ben.open_thread(tid)
    ben.page.fill("#spec-content", "Ben's addition to the thread.")
    ben.page.fill("#spec-stake", "2")
    ben.page.click("form.spec-form button[type=submit]")
    pending = ada.page.locator(".approval li.spec:not(.outcome)")
    expect(pending).to_contain_text("Ben")
    ada.page.reload()
    pending = ada.page.locator(".approval li.spec:not(.outcome)")
    expect(pending).to_contain_text("Ben")  # named after a reload too, though not a co-author yet
    expect(pending).not_to_contain_text(ben.address[:8])
    pending.get_by_role("button", name="Approve").click()
    notes = ada.page.locator("li.note")
    expect(notes.filter(has_text="submitted a spec")).to_have_count(1)
    expect(notes.filter(has_text="was approved")).to_have_count(1)
    for person in (ada, ben):
        person.page.reload()
        expect(person.page.locator(".thread-head h1")).to_have_text("Notes that stay")
        notes = person.page.locator("li.note")
        expect(notes.filter(has_text="submitted a spec")).to_contain_text("Ben")
        expect(notes.filter(has_text="approved a spec")).to_contain_text("Ada")
        expect(notes.filter(has_text="was approved")).to_have_count(1)
        expect(notes.filter(has_text="is now a co-author")).to_contain_text("Ben")
        # Drawn once, in order, and the messages are not counted twice.
        expect(person.message("The thread's first message.")).to_have_count(1)
        expect(person.message("Ben's addition to the thread.")).to_have_count(1)
    crowd.check_clean()


def test_a_new_browser_key_can_be_exported_by_default(browser: Browser, crowd: Crowd) -> None:
    """The key a browser makes at sign-in is exportable unless one asks otherwise: the "own wallet"
    is not stuck in the browser."""
    import base58
    from nacl.signing import SigningKey

    from choir.auth.client import address_of

    context = browser.new_context(base_url=crowd.server.base_url)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.locator("#signin-exportable")).to_be_checked()
        page.click("#signin-create")
        wait_js(page, "window.__choir && window.__choir.ready")
        address = page.evaluate("fetch('/api/me').then(r => r.json())")["address"]
        page.get_by_role("button", name="Export key").click()
        raw = base58.b58decode(page.input_value("#exported-key"))
        assert len(raw) == 64 and address_of(SigningKey(raw[:32])) == address
    finally:
        context.close()


def test_a_guest_reads_public_threads_and_is_asked_to_sign_in_to_write(
    browser: Browser, crowd: Crowd
) -> None:
    ada = crowd.sign_in("Ada")
    secret = ada.create_thread("Ada's notes", visibility="private")
    ada.post("Hidden from guests.")
    public = ada.create_thread("Open reading")
    ada.post("Visible to guests.")
    guest = browser.new_context(base_url=crowd.server.base_url)
    try:
        page = guest.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"/#/t/{public}")
        expect(page.locator(".thread-head h1")).to_have_text("Open reading")
        expect(page.locator("ol.messages li.message")).to_contain_text("Visible to guests.")
        expect(page.locator(".signin-prompt")).to_contain_text("Sign in to post")
        expect(page.locator("#post-content")).to_have_count(0)
        expect(page.locator("#ask-prompt")).to_have_count(0)
        threads = page.locator("#thread-list")
        expect(threads).to_contain_text("Open reading")
        expect(threads).not_to_contain_text("Ada's notes")
        page.evaluate("id => { location.hash = '#/t/' + encodeURIComponent(id); }", secret)
        expect(page.locator("main h1").first).to_have_text("This thread cannot be shown")
        expect(page.get_by_text("Hidden from guests.")).to_have_count(0)

        page.evaluate("id => { location.hash = '#/t/' + encodeURIComponent(id); }", public)
        page.locator("#guest-signin").click()
        page.click("#signin-create")
        wait_js(page, "window.__choir && window.__choir.ready && window.__choir.socket")
        expect(page.locator(".thread-head h1")).to_have_text("Open reading")
        expect(page.locator("#spec-content")).to_be_visible()  # signed in now: offered to join
        assert errors == []
    finally:
        guest.close()


def test_a_wallet_standard_wallet_is_found_and_signs_in(browser: Browser, crowd: Crowd) -> None:
    """A wallet that announces itself through the Wallet Standard (a stand-in whose signatures PyNaCl
    makes; no legacy window.solana) is offered at sign-in and signs the SIWS text."""
    from nacl.signing import SigningKey

    from choir.auth.client import address_of
    from choir.auth.siws import parse_message

    key = SigningKey.generate()
    address = address_of(key)
    signed: list[str] = []

    def wallet_sign(message: list[int]) -> list[int]:
        signed.append(bytes(message).decode())
        return list(key.sign(bytes(message)).signature)

    context = browser.new_context(base_url=crowd.server.base_url)
    try:
        context.expose_function("__walletSign", wallet_sign)
        context.add_init_script(
            """
            (() => {
              const account = { address: "WALLET_ADDRESS", publicKey: new Uint8Array(32), chains: ["solana:mainnet"],
                                features: ["solana:signMessage"] };
              const wallet = {
                version: "1.0.0", name: "Standard Wallet", icon: "data:,", chains: ["solana:mainnet"],
                accounts: [account],
                features: {
                  "standard:connect": { version: "1.0.0", connect: async () => ({ accounts: [account] }) },
                  "solana:signMessage": { version: "1.0.0", signMessage: async ({ message }) =>
                    [{ signedMessage: message,
                       signature: Uint8Array.from(await window.__walletSign(Array.from(message))) }] },
                },
              };
              window.addEventListener("wallet-standard:app-ready", (e) => e.detail.register(wallet));
            })();
            """.replace("WALLET_ADDRESS", address)
        )
        page = context.new_page()
        page.goto("/")
        page.get_by_role("button", name="Sign in with Standard Wallet").click()
        wait_js(page, "window.__choir && window.__choir.ready")
        assert page.evaluate("fetch('/api/me').then(r => r.json())")["address"] == address
        assert len(signed) == 1 and parse_message(signed[0]).address == address
    finally:
        context.close()


def test_the_thread_list_is_live(crowd: Crowd) -> None:
    """A new public thread appears in everyone's list at once; a private one in its creator's only,
    and in a new co-author's when they join (no 30 s refresh)."""
    ada, ben = crowd.sign_in("Ada"), crowd.sign_in("Ben")
    wait_js(ben.page, "window.__choir.socket && window.__choir.socket.state === 'open'")
    ada.create_thread("Fresh and public")
    expect(ben.page.locator("#thread-list")).to_contain_text("Fresh and public", timeout=5_000)
    ada.create_thread("Ada alone", visibility="private")
    expect(ada.page.locator("#thread-list")).to_contain_text("Ada alone", timeout=5_000)
    ben.page.wait_for_timeout(1_000)
    expect(ben.page.locator("#thread-list")).not_to_contain_text("Ada alone")
    crowd.check_clean()
