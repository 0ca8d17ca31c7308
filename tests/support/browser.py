"""A real browser for the tests: Debian's Chromium, headless, driven by Selenium.

:func:`chromium` starts ``/usr/bin/chromium`` through ``/usr/bin/chromedriver``
(Debian's ``chromium`` and ``chromium-driver`` packages, installed by
scripts/setup.sh) with a throw-away profile, and quits it at the end. Nothing is
ever downloaded: ``SE_OFFLINE=true`` keeps Selenium Manager from fetching a
browser or a driver, and the flags keep Chromium itself off the network (no
component updates, no sync, no background requests). A missing binary is a
test failure with the install hint, never a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = "install Debian's chromium and chromium-driver (scripts/setup.sh)"
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1280,900",
)


def require_chromium() -> None:
    """Fail (never skip) when the browser or its driver is not installed."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise AssertionError(f"{path} is missing: {INSTALL_HINT}")


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium under Selenium, quit (and its profile removed) on exit."""
    require_chromium()
    profile = tempfile.mkdtemp(prefix="huntgroup-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (*ARGUMENTS, f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # see console_errors
    service = Service(CHROMEDRIVER, log_output=os.path.join(profile, "chromedriver.log"))
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download anything
    try:
        driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.set_page_load_timeout(60)
            yield driver
        finally:
            driver.quit()
    finally:
        if offline is None:
            del os.environ["SE_OFFLINE"]
        else:
            os.environ["SE_OFFLINE"] = offline
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """A headless Chromium for one test (fails when Chromium is not installed)."""
    with chromium() as driver:
        yield driver


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The errors the pages logged to the console since the last call (script errors,
    resources refused by the Content-Security-Policy, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
