"""Leaving a thread (divest) and withdrawing to one's wallet, through the page, against the real server.

The server runs on a hand-moved clock so that the 7-day rule of divesting can be passed without
waiting; its sweeper is kept asleep so that no reward epoch is settled when the clock jumps, and every
balance change seen here is the one the test caused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_people import Crowd, Person
from harness import Clock, Server, run_server
from playwright.sync_api import expect

from choir.ledger import ONE_CHOIR

pytestmark = pytest.mark.browser

DAY_S = 86_400.0
# Longer than any test here: the sweeper (expiry, reward epochs) never runs while the clock jumps.
SWEEPER_ASLEEP_S = 3_600.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(tmp_path: Path, clock: Clock) -> Iterator[Server]:
    """Overrides conftest's server for this module: the same server, on ``clock``."""
    with run_server(tmp_path / "data", clock=clock, sweep_interval_s=SWEEPER_ASLEEP_S) as srv:
        yield srv


def _me(person: Person) -> dict[str, Any]:
    me: dict[str, Any] = person.page.evaluate("fetch('/api/me').then(r => r.json())")
    return me


def _withdrawn_units(server: Server) -> int:
    ledger = httpx.get(f"{server.base_url}/api/ledger", timeout=5).json()
    # A class appears in by_class once one of its accounts exists.
    return int(ledger["by_class"].get("withdrawn", "0"))


def _withdraw(person: Person, amount: str) -> None:
    person.page.fill("#withdraw-amount", amount)
    person.page.click("form.withdraw-form button[type=submit]")


def test_withdraw_to_my_wallet(crowd: Crowd, server: Server, screenshots: Path) -> None:
    ada = crowd.sign_in("Ada")
    welcome = server.settings.welcome_grant
    expect(ada.balance_units()).to_have_attribute("data-units", str(welcome))
    error = ada.page.locator("#withdraw-error")

    # Bad input is refused in the page, with a sentence saying what is wrong; nothing is sent.
    for typed, said in (
        ("abc", "Enter an amount like"),
        ("0", "above zero"),
        ("1.0000000001", "at most 9 decimals"),
        ("11", "Your balance is 10 CHOIR"),
    ):
        _withdraw(ada, typed)
        expect(error).to_contain_text(said)
    assert _me(ada)["balance"] == str(welcome)
    assert _withdrawn_units(server) == 0

    _withdraw(ada, "1")
    done = ada.page.locator("#withdraw-done")
    expect(done).to_contain_text("Withdrew 1 CHOIR")
    # This server settles on no chain: the page says so rather than promising a wallet.
    expect(done).to_contain_text("recorded as withdrawn (no chain: nothing was sent to a wallet)")
    expect(ada.page.locator("#withdraw-help")).to_contain_text("This server settles on no chain")
    expect(done).to_have_attribute("data-withdrawal-id", re.compile(r"^[0-9a-f]{24}$"))
    expect(done.locator("code.withdrawal-id")).to_have_text(re.compile(r"^[0-9a-f]{24}$"))
    expect(error).to_be_empty()
    expect(ada.balance_units()).to_have_attribute("data-units", str(welcome - ONE_CHOIR))
    expect(ada.page.locator("#my-balance")).to_have_text("9 CHOIR")
    assert _me(ada)["balance"] == str(welcome - ONE_CHOIR)
    assert _withdrawn_units(server) == ONE_CHOIR
    ada.page.screenshot(path=screenshots / "withdraw.png")

    # The server's refusal is shown too: the rest is withdrawn behind the page's back (no event
    # tells the page), so the page still believes 9 CHOIR are there and lets the form send.
    rest = str(welcome - ONE_CHOIR)
    ack: dict[str, Any] = ada.page.evaluate(
        "a => window.__choir.socket.request('withdraw', {amount: a})", rest
    )
    assert ack["amount"] == rest
    _withdraw(ada, "1")
    expect(error).to_have_text("Your balance does not cover this withdrawal.")
    assert _withdrawn_units(server) == welcome
    crowd.check_clean()


def test_the_last_co_author_cannot_leave(crowd: Crowd) -> None:
    ada = crowd.sign_in("Ada")
    ada.create_thread("Alone here")
    leave = ada.page.get_by_role("button", name="Leave thread")
    leave.click()
    expect(leave).to_have_attribute("aria-expanded", "true")
    confirm = ada.page.locator(".leave-confirm")
    expect(confirm.get_by_role("alert")).to_contain_text("You are the last co-author")
    expect(confirm.get_by_role("button", name=re.compile("^Leave and take"))).to_have_count(0)
    # Escape closes the confirmation and gives the focus back to the button that opened it.
    ada.page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(leave).to_be_focused()
    expect(ada.page.locator(".co-authors li.chip")).to_have_count(1)
    crowd.check_clean()


def _submit_spec(person: Person, content: str, stake_choir: str) -> None:
    person.page.fill("#spec-content", content)
    person.page.fill("#spec-stake", stake_choir)
    person.page.click("form.spec-form button[type=submit]")
    expect(person.page.locator(".approval li.spec:not(.outcome)").filter(has_text=content)).to_have_count(1)


def _vote(person: Person, content: str, button: str) -> None:
    spec = person.page.locator(".approval li.spec:not(.outcome)").filter(has_text=content)
    spec.get_by_role("button", name=button).click()


def test_a_co_author_leaves_after_seven_days(
    crowd: Crowd, server: Server, clock: Clock, screenshots: Path
) -> None:
    ada, ben, cy = crowd.sign_in("Ada"), crowd.sign_in("Ben"), crowd.sign_in("Cy")
    welcome = server.settings.welcome_grant
    tid = ada.create_thread("Rivers and their birds")

    # Ben joins: his 3 CHOIR go to Ada, the only voter.
    ben.open_thread(tid)
    _submit_spec(ben, "Dippers walk under the water of fast streams.", "3")
    _vote(ada, "Dippers walk under the water", "Approve")
    expect(ben.page.locator("#post-content")).to_be_visible()
    # Cy's spec is denied by both: her 4 CHOIR stay with the thread.
    cy.open_thread(tid)
    _submit_spec(cy, "Sandpipers bob their tails.", "4")
    for voter in (ada, ben):
        _vote(voter, "Sandpipers bob their tails", "Deny")
    for person in (ada, ben):
        expect(person.page.locator("#thread-balance")).to_have_attribute("data-units", str(4 * ONE_CHOIR))
    ben_before = welcome - 3 * ONE_CHOIR
    expect(ben.balance_units()).to_have_attribute("data-units", str(ben_before))

    # During the 7-day lock, Leave says when it opens and offers nothing that would be refused.
    ben.page.get_by_role("button", name="Leave thread").click()
    confirm = ben.page.locator(".leave-confirm")
    expect(confirm.locator(".leave-locked")).to_contain_text("You can leave this thread from")
    expect(confirm).to_contain_text("7 days after joining")
    expect(confirm.get_by_role("button", name=re.compile("Leave and take"))).to_have_count(0)
    confirm.get_by_role("button", name="Close").click()
    expect(ada.page.locator(".co-authors li.chip")).to_have_count(2)
    expect(ben.balance_units()).to_have_attribute("data-units", str(ben_before))

    # After it, the confirmation shows the share: floor(4 CHOIR / 2 co-authors).
    clock.advance(8 * DAY_S)
    ben.page.get_by_role("button", name="Leave thread").click()
    expect(confirm.locator(".leave-share")).to_have_attribute("data-units", str(2 * ONE_CHOIR))
    leave = confirm.get_by_role("button", name="Leave and take 2 CHOIR")
    expect(leave).to_be_focused()
    ben.page.screenshot(path=screenshots / "leave-thread.png")
    leave.click()
    expect(confirm).to_be_hidden()
    expect(ben.balance_units()).to_have_attribute("data-units", str(ben_before + 2 * ONE_CHOIR))
    assert _me(ben)["balance"] == str(ben_before + 2 * ONE_CHOIR)
    # Ben is a reader again: he is offered a spec, not the post form, and no Leave button.
    expect(ben.page.locator("#spec-content")).to_be_visible()
    expect(ben.page.get_by_role("button", name="Leave thread")).to_have_count(0)
    # Ada's page follows the coauthor.left event: Ben is gone, the thread keeps the other half.
    expect(ada.page.locator(".co-authors li.chip")).to_have_count(1)
    expect(ada.page.locator(f".co-authors li.chip[data-address='{ben.address}']")).to_have_count(0)
    expect(ada.page.locator("#thread-balance")).to_have_attribute("data-units", str(2 * ONE_CHOIR))
    expect(ada.page.locator("li.note").filter(has_text="left, taking 2 CHOIR")).to_contain_text("Ben")
    crowd.check_clean()
