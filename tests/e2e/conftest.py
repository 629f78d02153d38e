"""Browser tests: the real server on loopback, Debian's Chromium driven by Playwright's sync API.

Each test gets its own server (and data directory) and one browser per module; each person is a
new browser context, so two people never share cookies or IndexedDB. Screenshots go to a temporary
directory, or to the one named by CHOIR_SCREENSHOTS (``CHOIR_SCREENSHOTS=docs/screenshots`` refreshes
the pictures the README shows).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "realtime"))

from browser_people import Crowd
from harness import Server, run_server
from playwright.sync_api import Browser, sync_playwright

import services

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with run_server(tmp_path / "data", sweep_interval_s=0.2) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(chromium_launch_options: services.ChromiumLaunch) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(**chromium_launch_options)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def crowd(browser: Browser, server: Server) -> Iterator[Crowd]:
    """Signs people in; closes their pages before the server stops, so it need not wait for sockets."""
    people = Crowd(browser, server)
    try:
        yield people
    finally:
        people.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    chosen = os.environ.get("CHOIR_SCREENSHOTS")
    folder = (
        (ROOT / chosen) if chosen and not Path(chosen).is_absolute() else Path(chosen or tmp_path / "shots")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder
