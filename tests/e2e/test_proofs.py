"""Proofs a user can check, in a real browser, on a server that anchors on the embedded chain (the
real SPL Token and Memo programs in LiteSVM): a message shows "Verify anchor", and the page hashes its
content, walks the inclusion proof to the anchored root and says so; a tampered proof fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_people import Crowd
from harness import Server, run_server
from playwright.sync_api import Browser, expect

from choir.chain.merkle import MerkleTree, verify_proof

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Overrides conftest's server: this one settles on the embedded chain."""
    with run_server(tmp_path / "data", sweep_interval_s=0.2, chain="litesvm") as srv:
        yield srv


def wait_anchored(server: Server, cookie: str, message_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        response = httpx.get(
            f"{server.base_url}/api/messages/{message_id}/proof",
            cookies={"choir_session": cookie},
            timeout=10,
        )
        if response.status_code == 200:
            return response.json()  # type: ignore[no-any-return]
        assert response.status_code == 409 and response.json()["code"] == "not_anchored", response.text
        assert time.monotonic() < deadline, "never anchored"
        time.sleep(0.3)


def test_a_message_is_verified_in_the_page(crowd: Crowd, screenshots: Path) -> None:
    ada = crowd.sign_in("Ada")
    ada.create_thread("Anchored")
    item = ada.post("Provable words, hashed in the browser.")
    message_id = item.get_attribute("data-message-id")
    assert message_id
    cookie = next(c["value"] for c in ada.context.cookies() if c["name"] == "choir_session")
    proof = wait_anchored(crowd.server, cookie, message_id)
    assert proof["verified_on_chain"] is True and proof["chain"] == "litesvm"
    item.get_by_role("button", name="Verify anchor").click()
    expect(item).to_have_attribute("data-proof", "verified")
    expect(item.locator(".proof-result")).to_contain_text(
        "checked against the root the server read back from the chain"
    )
    ada.page.screenshot(path=screenshots / "proof.png")
    crowd.check_clean()


def test_the_page_verifier_agrees_with_the_server_one(browser: Browser, server: Server) -> None:
    """RFC 6962 in JS against choir.chain.merkle on every leaf of trees of several sizes, and a
    tampered path or root is refused by both."""
    page = browser.new_page(base_url=server.base_url)
    try:
        page.goto("/")
        for size in (1, 2, 3, 5, 8, 13):
            leaves = [f"leaf {i}".encode() for i in range(size)]
            tree = MerkleTree(leaves)
            for index in range(size):
                proof = tree.proof(index)
                assert verify_proof(tree.root, leaves[index], proof)
                args = [tree.root.hex(), leaves[index].hex(), index, size, [p.hex() for p in proof.path]]
                script = """async ([root, leaf, index, size, path]) => {
                    const p = await import('/js/proof.js');
                    const ok = await p.verifyInclusion(p.fromHex(root), p.fromHex(leaf), index, size, path.map(p.fromHex));
                    const bad = await p.verifyInclusion(p.fromHex(root), p.fromHex(leaf + '00'), index, size, path.map(p.fromHex));
                    return [ok, bad];
                }"""
                assert page.evaluate(script, args) == [True, False], (size, index)
    finally:
        page.close()


def test_every_version_of_an_edited_message_is_verified_in_the_page(crowd: Crowd) -> None:
    """The history lists both versions; each is hashed in the browser under its anchored record id
    (<id>~v2 for the edit) and walked to the root read back from the chain."""
    ada = crowd.sign_in("Ada")
    ada.create_thread("History on chain")
    item = ada.post("Said first.")
    message_id = item.get_attribute("data-message-id")
    assert message_id
    item.locator(".edit-button").click()
    item.locator("textarea.edit-content").fill("Said better.")
    item.locator(".edit-form button[type=submit]").click()
    edited = ada.message("Said better.")
    expect(edited.locator(".edited-mark")).to_be_visible()
    cookie = next(c["value"] for c in ada.context.cookies() if c["name"] == "choir_session")
    wait_anchored(crowd.server, cookie, message_id)
    deadline = time.monotonic() + 60
    while (
        httpx.get(
            f"{crowd.server.base_url}/api/messages/{message_id}/proof?version=2",
            cookies={"choir_session": cookie},
            timeout=10,
        ).status_code
        != 200
    ):
        assert time.monotonic() < deadline, "the edit was never anchored"
        time.sleep(0.3)
    edited.locator(".edited-mark").click()
    versions = edited.locator("li.version")
    expect(versions).to_have_count(2)
    for n in (1, 2):
        version = versions.nth(n - 1)
        version.get_by_role("button", name="Verify").click()
        expect(version.locator(".proof-result")).to_contain_text(f"Version {n} is anchored")
        expect(version.locator(".proof-result")).to_contain_text(
            "the root the server read back from the chain"
        )
    crowd.check_clean()
