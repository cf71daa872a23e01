"""How long the grid e-map of the whole county takes to load in headless Chromium (issue 21's 2 s goal).

`python -m petition_bench.map_load [--runs 15]` starts the five services on the local stack with the
demo county (own topic and database prefix, removed at the end), logs in as the county dispatcher
(the whole county: 2,635 grids), and loads `/staff/map` `runs` times, each time with the browser's
cache cleared first, then `runs` times with it warm. A load is timed from the navigation's start to
the moment the page's script has drawn every grid, the outlines and the alerts (`emap.readyMs`,
`performance.now()` at that point). Prints median, p95 and max as Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import numpy as np
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from petition_devtools import demo
from petition_devtools.browser import headless_chromium
from petition_devtools.namespace import drop_namespace
from petition_devtools.processes import REPO, ServiceFleet


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--runs", type=int, default=15)
    opts = args.parse_args()
    county = demo.demo_county()
    run = demo.demo_run("mapbench", county)
    prefix, work, env = run.prefix, run.work, run.env
    fleet = ServiceFleet(env=env, log_dir=work / "logs")
    driver = None
    try:
        urls = fleet.start_platform()
        demo.import_registry(urls["routing"], county)
        driver = headless_chromium()
        driver.set_window_size(1366, 768)
        report(measure(driver, urls["web"], demo.dispatcher_of(county), opts.runs), len(county.grids), opts.runs)
    finally:
        if driver is not None:
            driver.quit()
        fleet.stop_all()
        drop_namespace(demo.LOCAL_MONGO, demo.LOCAL_KAFKA, prefix)


def measure(d: WebDriver, web: str, staff_id: str, runs: int) -> dict[str, list[float]]:
    d.get(f"{web}/staff/login?q={staff_id}")
    d.find_element(By.CSS_SELECTOR, f"[data-account='{staff_id}']").click()
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-whoami]"))
    out: dict[str, list[float]] = {"cold": [], "warm": [], "drawn": []}
    load_once(d, web)  # the web service's own first fetch of the registry is not a page load people wait for
    for kind in ("cold", "warm"):
        for _ in range(runs):
            if kind == "cold":
                d.execute_cdp_cmd("Network.clearBrowserCache", {})
            ms, drawn = load_once(d, web)
            out[kind].append(ms)
            out["drawn"].append(drawn)
    return out


def load_once(d: WebDriver, web: str) -> tuple[float, int]:
    d.get(f"{web}/staff/map")
    WebDriverWait(d, 60, poll_frequency=0.05).until(lambda d: d.execute_script("return !!(window.emap && emap.ready)"))
    ms, drawn = d.execute_script("return [emap.readyMs, emap.drawnGrids];")
    time.sleep(0.2)  # let the page settle before the next navigation, so runs do not overlap
    return float(ms), int(drawn)


def report(result: dict[str, list[float]], grids: int, runs: int) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    print(f"# Grid map load, whole county ({grids} grids drawn in every run: {set(result['drawn'])})\n")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {platform.node()} · {os.cpu_count()} cores"
          f" · load average {load} · commit {commit.strip()} · {runs} runs each\n")  # fmt: skip
    print("| browser cache | median ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for kind in ("cold", "warm"):
        xs = np.asarray(result[kind])
        p50, p95 = np.percentile(xs, [50, 95])
        print(f"| {kind} | {p50:.0f} | {p95:.0f} | {xs.max():.0f} |")


if __name__ == "__main__":
    main()
