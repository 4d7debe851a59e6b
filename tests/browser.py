"""Headless Chromium driven by Selenium (Debian's chromium and chromium-driver)."""

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
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "admin"
DESKTOP = (1280, 900)
PHONE = (390, 844)


def require_chromium() -> None:
    """Skip (with the reason) where the browser is not installed; .ci/run installs it."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(
            f"not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)"
        )


@contextmanager
def chromium(size: tuple[int, int] = DESKTOP) -> Iterator[webdriver.Chrome]:
    """A fresh headless browser with a profile of its own, closed afterwards."""
    require_chromium()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save the whole page (as tall as its content) as test-artifacts/admin/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    original = driver.get_window_size()
    content, inner = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.innerHeight]"
    )
    # The window's height counts more than the page's viewport: add the difference.
    height = int(content) + original["height"] - int(inner)
    driver.set_window_size(original["width"], max(original["height"], min(height, 6000)))
    driver.save_screenshot(str(path))
    driver.set_window_size(original["width"], original["height"])
    return path
