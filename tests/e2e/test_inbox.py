"""A chat people live in, in real browsers with two or three people: @mentions with completion (and the
refusal to tell anyone outside a private thread), follows, unread counts that follow a person to another
browser, the first-unread marker, the notifications view, and editing and deleting one's own message."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from browser_people import DESKTOP, WAIT_MS, Crowd, Person, wait_js
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def cookie_of(person: Person) -> str:
    return next(c["value"] for c in person.context.cookies() if c["name"] == "choir_session")


def api(crowd: Crowd, person: Person, path: str) -> dict[str, object]:
    response = httpx.get(
        f"{crowd.server.base_url}{path}", cookies={"choir_session": cookie_of(person)}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def eventually(
    read: Callable[[], dict[str, object]], holds: Callable[[dict[str, object]], bool]
) -> dict[str, object]:
    """What ``read`` returns once ``holds`` (the page's requests are in flight a moment)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not holds(body := read()):
        assert time.monotonic() < deadline, f"never held: {body}"
        time.sleep(0.1)
    return body


def notifications_badge(person: Person) -> str:
    return person.page.locator("#notifications-count").inner_text()


def same_person_elsewhere(crowd: Crowd, person: Person) -> Person:
    """The same person in another browser: a new context carrying their session."""
    context = crowd.browser.new_context(base_url=crowd.server.base_url, viewport=DESKTOP)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT_MS)
    context.add_cookies(person.context.cookies())
    page = context.new_page()
    other = Person(context, page, person.name, person.address)
    page.on("pageerror", lambda error: other.errors.append(str(error)))
    page.goto("/")
    wait_js(page, "window.__choir && window.__choir.ready")
    crowd.people.append(other)
    return other


def test_a_mention_is_completed_and_told_live(crowd: Crowd, screenshots: Path) -> None:
    ada, bob = crowd.sign_in("Ada"), crowd.sign_in("Bob")
    thread = ada.create_thread("Herons")
    composer = ada.page.locator("#post-content")
    composer.fill("Look at this @Bo")
    option = ada.page.locator(".mention-option").filter(has_text="Bob")
    expect(option).to_be_visible()
    composer.press("Enter")  # picks Bob: the message is not sent yet
    expect(composer).to_have_value("Look at this @Bob ")
    composer.press_sequentially("the heron is back")
    composer.press("Enter")
    item = ada.message("the heron is back").last
    expect(item).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    expect(bob.page.locator("#notifications-count")).to_have_text("1")
    bob.page.click("#notifications-button")
    note = bob.page.locator("li.notification").first
    expect(note).to_contain_text("Ada mentioned you in “Herons”")
    expect(note).to_contain_text("the heron is back")
    bob.page.screenshot(path=screenshots / "notifications.png")
    note.locator("a").click()
    expect(bob.page).to_have_url(re.compile(f"#/t/{thread}/m/"))
    expect(bob.message("the heron is back")).to_have_class(re.compile("mentions-me"))
    expect(bob.page.locator("#notifications-count")).to_have_text("")
    # Read on the server: a reload keeps it read.
    bob.page.reload()
    wait_js(bob.page, "window.__choir && window.__choir.ready")
    expect(bob.page.locator("#notifications-count")).to_have_text("")
    crowd.check_clean()


def test_a_mention_in_a_private_thread_never_reaches_an_outsider(crowd: Crowd) -> None:
    ada, carol = crowd.sign_in("Ada"), crowd.sign_in("Carol")
    ada.create_thread("Ada's notes", visibility="private")
    composer = ada.page.locator("#post-content")
    # Completion works here (it offers the co-author), and offers only who may read the thread.
    composer.fill("@Ad")
    expect(ada.page.locator(".mention-option").filter(has_text="Ada")).to_be_visible()
    composer.fill("@Car")
    expect(ada.page.locator(".mentions-list")).to_be_hidden()
    expect(ada.page.locator(".mention-option").filter(has_text="Carol")).to_have_count(0)
    ada.post("a secret for @Carol only")  # typed by hand all the same
    ada.post("and one more for @" + carol.address[:8])
    notes = api(crowd, carol, "/api/notifications")
    assert notes["notifications"] == [] and notes["unread"] == 0
    carol.page.wait_for_timeout(500)
    assert notifications_badge(carol) == ""
    # Nor can she find it by searching.
    found = api(crowd, carol, "/api/search?q=secret")
    assert all("secret" not in str(r["content"]) for r in found["results"])  # type: ignore[union-attr]
    crowd.check_clean()


def test_unread_counts_follow_a_person_to_another_browser(crowd: Crowd, screenshots: Path) -> None:
    ada, bob = crowd.sign_in("Ada"), crowd.sign_in("Bob")
    thread = ada.create_thread("Followed")
    ada.post("Before Bob followed.")
    bob.open_thread(thread)
    bob.page.click("#follow-thread")
    expect(bob.page.locator("#follow-thread")).to_have_text("Following")
    bob.page.evaluate("location.hash = '#/'")
    ada.post("First news for Bob.")
    ada.post("Second news for Bob.")
    link = bob.page.locator(f'a.thread-link[data-thread-id="{thread}"]')
    expect(link.locator(".unread-count")).to_have_text("2")
    expect(bob.page.locator("#notifications-count")).to_have_text("2")  # replies in a followed thread
    bob.page.screenshot(path=screenshots / "unread.png")
    elsewhere = same_person_elsewhere(crowd, bob)
    other_link = elsewhere.page.locator(f'a.thread-link[data-thread-id="{thread}"]')
    expect(other_link.locator(".unread-count")).to_have_text("2")
    other_link.click()
    # Reading resumes at the first message Bob has not read.
    marker = elsewhere.page.locator("li.unread-marker")
    expect(marker).to_have_count(1)
    following = elsewhere.page.locator("li.unread-marker + li.message")
    expect(following).to_contain_text("First news for Bob.")
    elsewhere.page.screenshot(path=screenshots / "first-unread.png")
    # Read in one browser, read in the other: the count goes live, and so do the replies' notifications.
    expect(link.locator(".unread-count")).to_have_count(0)
    expect(bob.page.locator("#notifications-count")).to_have_text("")
    # Unfollowing stops the notifications.
    bob.open_thread(thread)
    bob.page.click("#follow-thread")
    expect(bob.page.locator("#follow-thread")).to_have_text("Follow")
    before = len(api(crowd, bob, "/api/notifications")["notifications"])  # type: ignore[arg-type]
    ada.post("Unheard by Bob.")
    expect(bob.message("Unheard by Bob.")).to_be_visible()
    assert len(api(crowd, bob, "/api/notifications")["notifications"]) == before  # type: ignore[arg-type]
    crowd.check_clean()


def test_specs_and_their_outcomes_are_notified_and_marked_read(crowd: Crowd) -> None:
    ada, bob = crowd.sign_in("Ada"), crowd.sign_in("Bob")
    thread = ada.create_thread("Join me")
    bob.open_thread(thread)
    bob.page.fill("#spec-content", "Let me in, I know herons.")
    bob.page.click("form.spec-form button[type=submit]")
    expect(ada.page.locator("#notifications-count")).to_have_text("1")
    ada.page.click("#notifications-button")
    expect(ada.page.locator("li.notification").first).to_contain_text("Bob asks to join “Join me”")
    expect(ada.page.locator("li.notification").first).to_contain_text("your vote is needed")
    ada.page.click("#notifications-read-all")
    expect(ada.page.locator("#notifications-count")).to_have_text("")
    ada.page.keyboard.press("Escape")
    ada.open_thread(thread)
    ada.page.get_by_role("button", name="Approve").first.click()
    expect(bob.page.locator("#notifications-count")).to_have_text("1")
    bob.page.click("#notifications-button")
    expect(bob.page.locator("li.notification").first).to_contain_text(
        "Your spec in “Join me” was approved: you are a co-author"
    )
    # Joining follows the thread, from the join on: what was there before is not news to Bob.
    joined = api(crowd, bob, "/api/inbox")["threads"][thread]  # type: ignore[index]
    assert joined["following"] is True and joined["unread"] == 0
    # What Ada marked read stays read on the server. Bob's spec, published by the approval, is news in a
    # thread she follows, but it came into the thread she was reading: it was read as it arrived.
    seen = eventually(lambda: api(crowd, ada, "/api/notifications"), lambda body: body["unread"] == 0)
    replies = [n for n in seen["notifications"] if n["kind"] == "reply"]  # type: ignore[union-attr,index]
    assert [(n["data"]["excerpt"], n["read"]) for n in replies] == [("Let me in, I know herons.", True)]
    crowd.check_clean()


def test_one_edits_and_deletes_ones_own_message_and_others_see_it(crowd: Crowd, screenshots: Path) -> None:
    ada, bob = crowd.sign_in("Ada"), crowd.sign_in("Bob")
    thread = ada.create_thread("Edits")
    item = ada.post("The heron nests in oaks.")
    message_id = item.get_attribute("data-message-id")
    bob.open_thread(thread)
    # Nobody else may change it: Bob has no buttons, and the server refuses him.
    expect(bob.message("The heron nests in oaks.").locator(".edit-button")).to_have_count(0)
    refused = bob.page.evaluate(
        "id => window.__choir.socket.request('message.edit', {message_id: id, content: 'mine now'})"
        ".then(() => 'applied', (e) => e.code)",
        message_id,
    )
    assert refused == "not_author"
    item.locator(".edit-button").click()
    editor = item.locator("textarea.edit-content")
    editor.fill("The heron nests in alders.")
    item.locator(".edit-form button[type=submit]").click()
    edited = bob.message("The heron nests in alders.")
    expect(edited).to_be_visible()
    expect(edited.locator(".edited-mark")).to_have_text("edited")
    edited.locator(".edited-mark").click()
    versions = edited.locator("li.version")
    expect(versions).to_have_count(2)
    expect(versions.nth(0)).to_contain_text("The heron nests in oaks.")
    expect(versions.nth(1)).to_contain_text("The heron nests in alders.")
    bob.page.screenshot(path=screenshots / "edited.png")
    # After a reload the message still says edited, with its new words.
    ada.page.reload()
    wait_js(ada.page, "window.__choir && window.__choir.ready")
    mine = ada.message("The heron nests in alders.")
    expect(mine.locator(".edited-mark")).to_be_visible()
    mine.locator(".delete-button").click()
    mine.locator(".confirm-delete").click()
    tomb = bob.messages.filter(has_text="This message was deleted.")
    expect(tomb).to_have_count(1)
    expect(bob.page.get_by_text("The heron nests in alders.")).to_have_count(0)
    gone = api(crowd, bob, f"/api/messages/{message_id}")
    assert gone["deleted"] is True and gone["content"] == "" and gone["html"] == ""
    history = api(crowd, bob, f"/api/messages/{message_id}/versions")["versions"]
    assert [v["content"] for v in history] == [None, None, None]  # type: ignore[index,union-attr]
    results = api(crowd, bob, "/api/search?q=heron+alders")["results"]
    assert all(r["message_id"] != message_id for r in results)  # type: ignore[index,union-attr]
    crowd.check_clean()


def test_notifications_missed_while_offline_arrive_on_reconnection(crowd: Crowd) -> None:
    """Bob's browser loses the network; Ada mentions him meanwhile; when the network is back the page
    resumes after the last notification it held and shows the one it missed, once."""
    ada, bob = crowd.sign_in("Ada"), crowd.sign_in("Bob")
    ada.create_thread("While away")
    bob.context.set_offline(True)
    bob.page.evaluate("window.__choir.socket.close()")  # the drop a lost network makes
    wait_js(bob.page, "window.__choir.socket.state !== 'open'")
    ada.post(f"@{bob.address[:8]} you missed this")
    bob.page.wait_for_timeout(300)
    assert bob.page.evaluate("window.__choir.socket.state") != "open"
    bob.context.set_offline(False)
    expect(bob.page.locator("#notifications-count")).to_have_text("1", timeout=20_000)
    bob.page.click("#notifications-button")
    notes = bob.page.locator("li.notification")
    expect(notes).to_have_count(1)
    expect(notes.first).to_contain_text("you missed this")
    crowd.check_clean()
