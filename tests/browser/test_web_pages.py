"""Issue 20 in a real browser: a citizen submits on a phone, the grid leader contacts and replies, the
citizen rates, and the petition is closed on both sides and in stats; a dispatcher assigns a triaged
petition; field errors show next to their field; a double click submits once; axe finds nothing
serious or critical on any page."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from petition_devtools import demo
from petition_devtools.tokens import token_for
from services.web.staff import QUEUE_PAGE
from tests.browser.conftest import DESKTOP, PHONE, Browser, Platform
from tests.support import eventually, read_topic

pytestmark = pytest.mark.timeout(600)


def css(driver: WebDriver, selector: str):  # type: ignore[no-untyped-def]
    return driver.find_element(By.CSS_SELECTOR, selector)


def until(driver: WebDriver, check: Callable[[WebDriver], object], timeout_s: float = 20) -> object:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(check)


def reload_until(driver: WebDriver, selector: str, timeout_s: float = 30, text: str = "") -> None:
    """Reload the page until `selector` is on it (with `text` in it): the services learn of each change
    over Kafka."""

    def present(d: WebDriver) -> bool:
        if any(text in e.text for e in d.find_elements(By.CSS_SELECTOR, selector)):
            return True
        d.refresh()
        return False

    WebDriverWait(driver, timeout_s, poll_frequency=0.5).until(present)


def fill_petition(b: Browser, platform: Platform, content: str, phone: str = "13912345678") -> None:
    d = b.driver
    village = platform.county.villages[0]
    d.get(f"{platform.web}/submit")
    Select(css(d, "#category")).select_by_value("drainage")
    Select(css(d, "#town_id")).select_by_value(village.town_id)
    Select(css(d, "#village_id")).select_by_value(village.village_id)
    css(d, "#address").send_keys("第1网格 3号楼东侧")
    css(d, "#content").send_keys(content)
    css(d, "#name").send_keys("王秀英")
    css(d, "#phone").send_keys(phone)


def hotline_petition(
    platform: Platform, category: str, content: str, place: tuple[str, str], phone: str, token: str | None = None
) -> str:
    """A petition filed straight with intake's API, as the hotline files them (town, village by name);
    its id."""
    resp = requests.post(
        f"{platform.urls['intake']}/v1/petitions",
        json={
            "channel": "hotline",
            "category": category,
            "content": content,
            "location": {"town": place[0], "village": place[1]},
            "citizen": {"name": "李强", "phone": phone},
        },
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["petition_id"]


def login(b: Browser, platform: Platform, staff_id: str) -> None:
    d = b.driver
    d.get(f"{platform.web}/staff/login?q={staff_id}")
    css(d, f"[data-account='{staff_id}']").click()
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-whoami]"))


def test_a_petition_from_the_phone_to_closed_on_both_sides_and_in_stats(platform: Platform, browser: Browser) -> None:
    d, web = browser.driver, platform.web
    browser.viewport(PHONE)
    d.get(web)
    browser.axe("home")
    browser.shoot("citizen-home", PHONE)

    fill_petition(browser, platform, "小区门口的下水道堵了三天，污水漫到路面，请尽快疏通。")
    assert not browser.axe("submit")
    browser.shoot("citizen-submit", PHONE)
    css(d, "[data-submit]").click()
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-tracking-code]"))
    petition_id = css(d, "[data-petition-id]").text
    code = css(d, "[data-tracking-code]").text
    assert petition_id.startswith("JZ") and code
    assert d.find_elements(By.CSS_SELECTOR, ".qr svg")
    browser.axe("receipt")
    browser.shoot("citizen-receipt", PHONE)

    css(d, "[data-track-link]").click()
    reload_until(d, "[data-status='assigned']")
    track_url = d.current_url
    assert parse_qs(urlparse(track_url).query)["code"] == [code]
    browser.axe("track")
    browser.shoot("citizen-track-assigned", PHONE)

    # the grid leader of the village's default grid, on a phone too
    leader = demo.first_village_leader(platform.county)
    d.get(f"{web}/staff/login")
    browser.axe("staff-login")
    browser.shoot("staff-login", PHONE)
    login(browser, platform, leader)
    reload_until(d, f"[data-order='{petition_id}']")
    browser.axe("staff-queue")
    browser.shoot("staff-queue", PHONE)
    css(d, f"[data-order='{petition_id}'] a").click()
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-show-contact]"))
    assert "13912345678" not in d.page_source  # only after the explicit, audited "show"
    css(d, "[data-show-contact]").click()
    until(d, lambda d: "13912345678" in css(d, "[data-contact]").text)
    css(d, "#note").send_keys("已电话联系，约定下午到现场")
    css(d, "[data-action='contact']").click()
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-order-status='in_progress']"))
    Select(css(d, "#resolution")).select_by_value("resolved")
    css(d, "#summary").send_keys("已安排人员疏通下水道，路面已清理。")
    browser.axe("staff-order")
    browser.shoot("staff-order", PHONE)
    css(d, "[data-action='reply']").click()
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-order-status='replied']"))

    # the citizen rates the reply
    d.get(track_url)
    reload_until(d, "[data-status='replied']")
    assert "已安排人员疏通下水道" in css(d, "[data-reply]").text
    css(d, "input[name='satisfaction'][value='satisfied']").click()
    css(d, "#comment").send_keys("处理很及时，谢谢！")
    browser.axe("track-rate")
    browser.shoot("citizen-track-rate", PHONE)
    css(d, "form[action$='/feedback'] button[type=submit]").click()
    reload_until(d, "[data-status='closed']")
    assert "满意" in css(d, "[data-feedback]").text
    browser.shoot("citizen-track-closed", PHONE)

    # closed on the staff side, and counted closed in stats
    d.get(f"{web}/staff/orders/{petition_id}")
    reload_until(d, "[data-order-status='closed']")
    browser.viewport(DESKTOP)
    login(browser, platform, demo.dispatcher_of(platform.county))
    d.get(f"{web}/staff/stats")
    reload_until(d, "[data-figure='closed']")

    def counted(d: WebDriver) -> bool:
        if css(d, "[data-figure='closed']").text.strip() not in ("", "0"):
            return True
        d.refresh()
        return False

    WebDriverWait(d, 60, poll_frequency=1).until(counted)
    browser.axe("staff-stats")
    browser.shoot("staff-stats", DESKTOP)
    d.get(f"{web}/staff/escalations")
    browser.axe("staff-escalations")
    browser.shoot("staff-escalations", DESKTOP)
    browser.viewport(PHONE)


def test_a_dispatcher_assigns_a_triaged_petition_to_a_grid(platform: Platform, browser: Browser) -> None:
    d, web = browser.driver, platform.web
    marker = uuid.uuid4().hex[:8]
    petition_id = hotline_petition(platform, "roads", f"路灯坏了 {marker}", ("不存在的镇", "查无此村"), "13800001111")
    browser.viewport(DESKTOP)
    login(browser, platform, demo.dispatcher_of(platform.county))
    d.get(f"{web}/staff/triage")
    reload_until(d, f"[data-triage='{petition_id}']")
    browser.axe("staff-triage")
    browser.shoot("staff-triage", DESKTOP)
    village = platform.county.villages[1]
    form = f"[data-triage='{petition_id}']"
    Select(css(d, f"{form} select[name='village_id']")).select_by_value(village.village_id)
    # the script fills the village's grids; choose the second, or keep the default grid if it has one
    until(d, lambda d: len(Select(css(d, f"{form} select[name='grid_id']")).options) > 1)
    grid = Select(css(d, f"{form} select[name='grid_id']")).options[-1].get_attribute("value")
    Select(css(d, f"{form} select[name='grid_id']")).select_by_value(grid)
    css(d, f"{form} button[type=submit]").click()
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".notice"))
    assert not d.find_elements(By.CSS_SELECTOR, f"[data-triage='{petition_id}']")

    dispatcher = {"Authorization": f"Bearer {token_for(demo.dispatcher_of(platform.county))}"}
    order = requests.get(f"{platform.urls['routing']}/v1/workorders/{petition_id}", headers=dispatcher, timeout=10)
    assert order.json()["assignment"]["grid_id"] == grid
    browser.viewport(PHONE)


def test_a_long_queue_shows_the_nearest_deadlines_a_page_at_a_time(platform: Platform, browser: Browser) -> None:
    """More open orders than a page: the grid leader's queue shows the first 50 by nearest deadline, says
    how many there are, and the next page shows the rest."""
    county = platform.county
    village = county.villages[2]  # a village of its own: the other tests' leaders keep short queues
    town = next(t for t in county.towns if t.town_id == village.town_id)
    grid = min((g for g in county.grids if g.village_id == village.village_id), key=lambda g: g.grid_id)
    # filed with the dispatcher's token, as a hotline does: counted per token, not per address
    staff = token_for(demo.dispatcher_of(county))
    place = (town.name, village.name)
    submitted = {
        hotline_petition(platform, "drainage", f"排水沟堵塞，第{n}处", place, f"139{n:08d}", staff)
        for n in range(QUEUE_PAGE + 3)
    }
    d = browser.driver
    browser.viewport(PHONE)
    login(browser, platform, grid.leader_id)
    d.get(f"{platform.web}/staff/queue")
    reload_until(d, "[data-page]", timeout_s=60, text=f"共 {len(submitted)} 件")  # routing has assigned them all
    first = [e.get_attribute("data-order") for e in d.find_elements(By.CSS_SELECTOR, "[data-order]")]
    deadlines = [e.get_attribute("data-deadline") for e in d.find_elements(By.CSS_SELECTOR, "[data-deadline]")]
    assert len(first) == QUEUE_PAGE and "第 1/2 页" in css(d, "[data-page]").text
    assert deadlines == sorted(deadlines)  # nearest first (orders whose clock sla has not yet come last)
    browser.axe("staff-queue-pages")
    css(d, "[data-next]").click()
    until(d, lambda d: "第 2/2 页" in css(d, "[data-page]").text)
    second = [e.get_attribute("data-order") for e in d.find_elements(By.CSS_SELECTOR, "[data-order]")]
    assert set(first) | set(second) == submitted and not set(first) & set(second)
    assert not d.find_elements(By.CSS_SELECTOR, "[data-next]")


def test_a_field_error_shows_next_to_its_field(platform: Platform, browser: Browser) -> None:
    d = browser.driver
    browser.viewport(PHONE)
    fill_petition(browser, platform, "楼道灯不亮", phone="12345")
    css(d, "[data-submit]").click()
    error = until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#err-citizen-phone"))[0]  # type: ignore[index]
    assert "手机号码" in error.text
    phone = css(d, "#phone")
    assert phone.get_attribute("aria-invalid") == "true"
    assert phone.get_attribute("aria-describedby") == "err-citizen-phone"
    # next to its field: the message follows the phone input in the same field block
    assert error.find_element(By.XPATH, "..") == phone.find_element(By.XPATH, "..")
    assert phone.get_attribute("value") == "12345"  # what the citizen typed is kept
    assert not browser.axe("submit-errors")
    browser.shoot("citizen-submit-errors", PHONE)


def test_a_double_click_submits_once(platform: Platform, browser: Browser) -> None:
    d = browser.driver
    browser.viewport(PHONE)
    marker = f"双击测试 {uuid.uuid4().hex[:8]}"
    fill_petition(browser, platform, marker)
    ActionChains(d).double_click(css(d, "[data-submit]")).perform()
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-tracking-code]"))
    topic = f"{platform.topic_prefix}petitions.intake.v1"

    def submitted_once() -> None:
        events = read_topic(topic, lambda ms: False, timeout_s=3)
        mine = [
            m
            for m in events
            if isinstance(m["value"], dict)
            and m["value"].get("type") == "petition.submitted"
            and m["value"]["data"]["content"] == marker
        ]
        assert len(mine) == 1, len(mine)

    eventually(submitted_once, timeout_s=20)


def test_a_citizen_joins_a_similar_open_petition_nearby(platform: Platform, browser: Browser) -> None:
    d = browser.driver
    browser.viewport(PHONE)
    grid = platform.county.grids[0]
    point = grid.polygon.representative_point()
    first = requests.post(
        f"{platform.urls['intake']}/v1/petitions",
        json={
            "channel": "web",
            "category": "environment",
            "content": "垃圾桶满了没人清运",
            "location": {"town": "城关街道", "village": "下龙河新村", "lat": point.y, "lon": point.x},
            "citizen": {"name": "赵敏", "phone": "13700002222"},
        },
        timeout=10,
    )
    assert first.status_code == 201, first.text
    petition_id = first.json()["petition_id"]

    def offered(d: WebDriver) -> bool:
        fill_petition(browser, platform, "这里的垃圾好几天没清运了")
        Select(css(d, "#category")).select_by_value("environment")
        css(d, "details.hint-box summary").click()
        css(d, "#lat").send_keys(f"{point.y:.6f}")
        css(d, "#lon").send_keys(f"{point.x:.6f}")
        css(d, "[data-submit]").click()
        return bool(d.find_elements(By.CSS_SELECTOR, f"form[action$='/join/{petition_id}']"))

    # the nearby index learns of the first petition when routing has placed it
    WebDriverWait(d, 30, poll_frequency=1).until(offered)
    browser.axe("nearby")
    browser.shoot("citizen-nearby", PHONE)
    css(d, f"form[action$='/join/{petition_id}'] button").click()
    until(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-tracking-code]"))
    assert css(d, "[data-petition-id]").text == petition_id
    assert "已加入" in css(d, "h1").text


def test_the_citizen_pages_read_at_desktop_size_too(platform: Platform, browser: Browser) -> None:
    d = browser.driver
    browser.viewport(DESKTOP)
    d.get(f"{platform.web}/submit")
    assert not browser.axe("submit-desktop")
    # nothing wider than the window: no sideways scrolling at 1366 or at 360
    assert d.execute_script("return document.documentElement.scrollWidth") <= DESKTOP[0]
    browser.shoot("citizen-submit-desktop", DESKTOP)
    browser.viewport(PHONE)
    d.get(f"{platform.web}/submit")
    assert d.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]


def test_pages_have_no_serious_or_critical_accessibility_violation(platform: Platform, browser: Browser) -> None:
    d = browser.driver
    for path in ("/track", "/no-such-page"):
        d.get(platform.web + path)
        browser.axe(path)
    assert browser.violations == [], browser.violations
