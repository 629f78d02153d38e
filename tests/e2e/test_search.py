"""The search box in a real browser: "/" focuses it, results come as one types, the query's words are
marked, each result names its thread and author, and a click opens the message in its thread. A
private thread's message is found by its co-author and by nobody else."""

from __future__ import annotations

import time

import httpx
import pytest
from browser_people import Crowd, Person
from harness import Server
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TOPIC = [
    "Cherry tomatoes ripen faster on a sunny balcony.",
    "Water tomatoes deeply twice a week rather than a little every day.",
    "Tomato leaves curl when the nights are cold.",
]
RARE = "My Sungold plants split after the storm, the rest did not."
SECRET = "The Zanzibar vault code is behind the blue crate."


def wait_indexed(server: Server, text: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = httpx.get(f"{server.base_url}/api/search", params={"q": text, "mode": "vector"}).json()
        if any(r["content"] == text for r in found["results"]):
            return
        time.sleep(0.1)
    pytest.fail(f"not indexed: {text}")


def search(person: Person, query: str) -> None:
    # Out of any text field (where "/" is just typed): the shortcut must reach the page.
    person.page.evaluate("document.activeElement && document.activeElement.blur()")
    person.page.keyboard.press("/")
    expect(person.page.locator("#search")).to_be_focused()
    person.page.keyboard.type(query, delay=20)


def test_search_as_you_type_and_open_a_result(crowd: Crowd) -> None:
    ada = crowd.sign_in("Ada")
    garden = ada.create_thread("Tomatoes")
    for text in [*TOPIC, RARE]:
        ada.post(text)
    rare_id = ada.message(RARE).get_attribute("data-message-id")
    ada.create_thread("Ada's notes", visibility="private")
    ada.post(SECRET)
    wait_indexed(crowd.server, RARE)

    bob = crowd.sign_in("Bob")
    search(bob, "sungold")
    hits = bob.page.locator("#search-results li")
    expect(hits.first).to_contain_text("My Sungold plants split")
    expect(hits.first.locator("mark")).to_have_text("Sungold")
    expect(hits.first.locator(".search-where")).to_contain_text("Tomatoes")
    expect(hits.first.locator(".search-where")).to_contain_text("Ada")
    hits.first.click()
    expect(bob.page.locator(".thread-head h1")).to_have_text("Tomatoes")
    assert bob.page.evaluate("location.hash") == f"#/t/{garden}/m/{rare_id}"
    expect(bob.page.locator("li.message.highlight")).to_contain_text("Sungold")
    expect(bob.page.locator("#search-results")).to_be_hidden()

    # Someone else's private thread: nothing, by its rare word or by its meaning.
    bob.page.fill("#search", "")
    search(bob, "Zanzibar vault code")
    expect(bob.page.locator(".search-status")).to_contain_text("Nothing found")
    expect(bob.page.locator("#search-results li")).to_have_count(0)

    # Its co-author finds it; arrow keys and Enter open it.
    search(ada, "zanzibar")
    expect(ada.page.locator("#search-results li").first).to_contain_text("(private)")
    ada.page.keyboard.press("ArrowDown")
    ada.page.keyboard.press("Enter")
    expect(ada.page.locator(".thread-head h1")).to_have_text("Ada's notes")
    expect(ada.page.locator("li.message.highlight")).to_contain_text("Zanzibar")
    crowd.check_clean()


def test_slash_in_a_text_field_is_typed_not_a_shortcut(crowd: Crowd) -> None:
    ada = crowd.sign_in("Ada")
    ada.create_thread("Paths")
    ada.page.fill("#post-content", "")
    ada.page.locator("#post-content").type("a/b")
    expect(ada.page.locator("#post-content")).to_have_value("a/b")
    expect(ada.page.locator("#search")).not_to_be_focused()
    crowd.check_clean()
