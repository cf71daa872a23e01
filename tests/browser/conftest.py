"""The browser tests' world: the five services over the local stack with the demo county imported,
and headless Chromium (Debian's chromium through chromium-driver; Selenium never downloads a driver).

Pages are checked with axe-core from npm (services/web/node_modules, `npm ci` in bin/setup), injected
into each page; screenshots of the main pages go to docs/screenshots/ (committed, shown in the README).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from countysim import County
from petition_devtools import demo
from petition_devtools.browser import headless_chromium
from petition_devtools.namespace import database_prefix
from petition_devtools.processes import ServiceFleet

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "services" / "web" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "docs" / "screenshots"
PHONE = (360, 640)
DESKTOP = (1366, 768)


@dataclass
class Platform:
    county: County
    urls: dict[str, str]
    topic_prefix: str

    @property
    def web(self) -> str:
        return self.urls["web"]


@pytest.fixture(scope="module")
def platform(run_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    prefix = f"{run_env['KAFKA_TOPIC_PREFIX']}{uuid.uuid4().hex[:6]}"
    work = tmp_path_factory.mktemp("web")
    county = demo.demo_county()
    env = {
        **run_env,
        "KAFKA_TOPIC_PREFIX": f"{prefix}-",
        "MONGO_DB_PREFIX": database_prefix(prefix),
        **demo.prepare(county, work),
    }
    fleet = ServiceFleet(env=env, log_dir=work / "logs")
    try:
        urls = fleet.start_platform()
        demo.import_registry(urls["routing"], county)
        yield Platform(county, urls, env["KAFKA_TOPIC_PREFIX"])
    finally:
        fleet.stop_all()


@dataclass
class Browser:
    driver: WebDriver
    violations: list[dict[str, Any]] = field(default_factory=list)

    def viewport(self, size: tuple[int, int]) -> None:
        width, height = size
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )

    def axe(self, page: str) -> list[dict[str, Any]]:
        """Run axe-core on the current page; serious and critical violations are kept for the final check."""
        self.driver.execute_script(AXE.read_text(encoding="utf-8"))
        found = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
            "v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))));"
        )
        bad = [{**v, "page": page} for v in found if v["impact"] in ("serious", "critical")]
        self.violations.extend(bad)
        return bad

    def shoot(self, name: str, size: tuple[int, int]) -> Path:
        """A full-page screenshot at the viewport's width, into docs/screenshots/<name>.png."""
        width, height = size
        full = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": max(height, full), "deviceScaleFactor": 1, "mobile": width < 600},
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.viewport(size)
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    driver = headless_chromium()
    driver.set_script_timeout(30)
    b = Browser(driver)
    b.viewport(PHONE)
    try:
        yield b
    finally:
        driver.quit()
