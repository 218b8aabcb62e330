"""A real gateway process and Debian's headless Chromium driven by Playwright, for the dashboard's browser tests.

Chromium comes from Debian's packages (`make test` installs it when missing), never from `playwright install`.
Without it these tests skip and say why; with CI=true they fail instead. Every page a test opens records console
errors and requests that would leave the gateway's origin (those are aborted), and the test fails on either.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import IN_CI

CHROMIUM = os.environ.get("ISTHMUS_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("ISTHMUS_UI_SCREENSHOTS")
"""A folder to save a screenshot of each page in (`make ui-screenshots` sets it to docs/ui)."""
VIEWPORT = {"width": 1280, "height": 900}


def require_chromium() -> str:
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
        return CHROMIUM
    reason = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium; make test does it)"
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests are required)")
    pytest.skip(reason)


@dataclass
class Watch:
    """What a page did that a test must not allow: console errors, page errors, requests to other origins."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def expect_error(self, text: str) -> None:
        """One console error containing `text` is what the test provokes (Chromium logs every 4xx page it loads)."""
        self.expected.append(text)

    def attach(self, context: Any) -> None:
        def route(route: Any) -> None:
            url = route.request.url
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin:
                route.continue_()
            else:
                self.foreign_requests.append(url)
                route.abort()

        context.route("**/*", route)

    def watch_page(self, page: Any) -> None:
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))

    def assert_clean(self) -> None:
        unexpected = list(self.console_errors)
        for text in self.expected:
            match = next((error for error in unexpected if text in error), None)
            assert match is not None, f"expected a console error with {text!r}, got {self.console_errors}"
            unexpected.remove(match)
        assert unexpected == [], f"console errors: {unexpected}"
        assert self.foreign_requests == [], f"requests leaving the gateway's origin: {self.foreign_requests}"


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


@dataclass
class Browser:
    browser: Any
    origin: str

    def open(self) -> Iterator[tuple[Any, Watch]]:
        context = self.browser.new_context(viewport=VIEWPORT, base_url=self.origin)
        watch = Watch(self.origin)
        watch.attach(context)
        context.on("page", watch.watch_page)
        page = context.new_page()
        try:
            yield page, watch
        finally:
            context.close()
        watch.assert_clean()
