"""Headless Chromium for scenario 11 and the dev-proxy tests: Debian's `chromium`, driven by Playwright's
Python package, which is told where the browser is and never downloads one. The flags keep it off every
network but 127.0.0.1 (no background requests, updates, sync or metrics) and fit a container (no sandbox,
no /dev/shm)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-breakpad", "--metrics-recording-only", "--no-first-run", "--no-default-browser-check",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater",
    "--no-proxy-server",
]


def chromium_path() -> str | None:
    return CHROMIUM if shutil.which(CHROMIUM) else shutil.which("chromium")


@contextmanager
def chromium(path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
