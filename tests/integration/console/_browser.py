"""The review console in a real browser: Debian's chromium, driven by Playwright.

Playwright's own browser download is never used (it is not reachable from every
network, and a second browser would be one more thing to keep patched): the test drives
the distribution's chromium, which the CI setup installs (``.ci/run``). A missing chromium
fails the test with the command that installs it. It never skips: a skipped browser test
would let ``make test`` pass without the console ever being clicked.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.integration._scorer import wait_until

__all__ = ["SUMMARIES_SEEN", "api_json", "browser_page", "console_up", "screenshot_dir"]

#: The size of the README's screenshots.
VIEWPORT = {"width": 1280, "height": 800}

#: Counts the ``summary`` events the page's EventSource receives, in ``window.__summaries``.
#: A listener added in the constructor runs before the page's own, so once the count is
#: positive the page has taken its first summary (and its queue version). Init scripts are
#: injected by the browser itself, so the console's strict CSP stays on.
_COUNT_SUMMARIES = """
window.__summaries = 0;
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) {
    super(...args);
    this.addEventListener("summary", () => { window.__summaries += 1; });
  }
};
"""
SUMMARIES_SEEN = "window.__summaries > 0"


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(
            "the console's browser test needs Debian's chromium (Playwright's own browser "
            "download is not used): install it with `apt-get install chromium`",
            pytrace=False,
        )
    return path


@contextmanager
def browser_page(base_url: str, timeout_s: float = 20) -> Iterator[Page]:
    """A fresh headless chromium page on ``base_url`` (relative URLs resolve there)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT, base_url=base_url)  # type: ignore[arg-type]
            context.add_init_script(_COUNT_SUMMARIES)
            page = context.new_page()
            page.set_default_timeout(timeout_s * 1000)  # every action and navigation bounded
            yield page
        finally:
            browser.close()


def console_up(port: int, *, timeout_s: float, diagnose: Callable[[], str]) -> str:
    """Wait (bounded) until the console's sign-in page answers 200; return its base URL."""
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_until(answers, timeout_s=timeout_s, what=f"the review console at {url}", poll_s=0.5,
               diagnose=diagnose)  # fmt: skip
    return url


def screenshot_dir(default: Path) -> Path:
    """Where screenshots go: FRAUD_CONSOLE_SCREENSHOTS (e.g. docs/) or ``default``."""
    target = Path(os.environ.get("FRAUD_CONSOLE_SCREENSHOTS") or default)
    target.mkdir(parents=True, exist_ok=True)
    return target


def api_json(page: Page, path: str) -> Any:
    """GET ``path`` with the page's session (its cookies) and return the JSON body."""
    response = page.request.get(path)
    assert response.ok, f"GET {path}: {response.status} {response.text()[:200]}"
    return response.json()
