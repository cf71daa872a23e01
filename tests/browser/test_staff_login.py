"""The grid leader logs in to the workbench through the identity provider's real login page
(Keycloak's form, filled by Selenium: authorization code + PKCE), and the queue shows the work
orders of its grid and not those of the next grid."""

from __future__ import annotations

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from petition_devtools import demo
from petition_devtools.tokens import token_for
from tests.browser.conftest import Browser, Platform
from tests.e2e.identity_world import Roster
from tests.e2e.test_submission_event import BODY
from tests.support import eventually

pytestmark = pytest.mark.timeout(600)


def _submit(platform: Platform, grid_id: str, phone: str) -> str:
    body = {**BODY, "citizen": {"name": "王秀英", "phone": phone}, "location": {**BODY["location"], "grid_id": grid_id}}
    resp = requests.post(f"{platform.urls['intake']}/v1/petitions", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()["petition_id"]


def test_a_grid_leader_logs_in_through_the_provider(browser: Browser, platform: Platform) -> None:
    county = platform.county
    leader_id = demo.first_village_leader(county)
    leader = next(s for s in county.staff if s.staff_id == leader_id)
    own = sorted(leader.grid_ids)[0]
    other = next(
        g.grid_id for g in county.grids if g.village_id == leader.village_id and g.grid_id not in leader.grid_ids
    )
    mine, theirs = _submit(platform, own, "13900001111"), _submit(platform, other, "13900002222")
    roster = Roster.connect()
    roster.add_from_county(county, leader_id)
    roster.sync()
    try:
        d = browser.driver
        d.delete_all_cookies()
        d.get(f"{platform.web}/staff/login")
        d.find_element(By.CSS_SELECTOR, "#oidc-login").click()
        wait = WebDriverWait(d, 60, poll_frequency=0.5)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#username"))
        assert d.current_url.startswith(f"{roster.admin.base}/realms/county/protocol/openid-connect/auth")
        username = roster.username(leader_id)
        d.find_element(By.CSS_SELECTOR, "#username").send_keys(username)
        d.find_element(By.CSS_SELECTOR, "#password").send_keys(roster.passwords[username])
        d.find_element(By.CSS_SELECTOR, "#kc-login").click()
        wait.until(lambda d: d.current_url.startswith(f"{platform.web}/staff"))
        assert "/staff/login" not in d.current_url, d.page_source[:500]

        def listed(d) -> bool:  # type: ignore[no-untyped-def]
            if d.find_elements(By.CSS_SELECTOR, f"[data-order='{mine}']"):
                return True
            d.refresh()
            return False

        wait.until(listed)
        dispatcher = {"Authorization": f"Bearer {token_for(demo.dispatcher_of(county))}"}
        routed = f"{platform.urls['routing']}/v1/workorders/{theirs}"
        eventually(lambda: requests.get(routed, headers=dispatcher, timeout=10).raise_for_status())
        d.refresh()
        assert not d.find_elements(By.CSS_SELECTOR, f"[data-order='{theirs}']")
    finally:
        roster.remove()
