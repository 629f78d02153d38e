"""Things that were broken, in a real browser: each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from browser_people import Crowd
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
