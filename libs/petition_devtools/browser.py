"""Headless Chromium for the browser tests and the page benchmarks: Debian's `chromium` through
`chromium-driver` (CHROMIUM, CHROMEDRIVER to override); Selenium Manager never downloads anything."""

from __future__ import annotations

import os

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


def headless_chromium() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=zh-CN", "--disable-gpu"):
        options.add_argument(arg)
    # the given driver and browser only: Selenium Manager must not fetch anything
    os.environ.setdefault("SE_OFFLINE", "true")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
