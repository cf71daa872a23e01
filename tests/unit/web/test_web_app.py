"""The web service without the other services: labels, headers, login rules (no stack needed)."""

from __future__ import annotations

import re
import threading

import pytest
from flask.testing import FlaskClient

from petition_common.auth import InsecureConfiguration
from petition_common.config import Settings
from services.web import labels
from services.web.app import create_app
from services.web.backends import Answer, Backends
from services.web.sessions import LastQueue, SessionTable, StaffSession

# nothing listens here: a page that needs a service answers the "try again" page
NOWHERE = Backends({s: "http://127.0.0.1:9" for s in ("intake", "routing", "sla", "stats")})


def _app(environment: str = "development", **extra: str):  # type: ignore[no-untyped-def]
    settings = Settings(service="web", environment=environment, extra=extra)
    return create_app(settings, backends=NOWHERE)


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("citizen.phone", "手机号码"),
        ("citizen.name", "姓名"),
        ("location.village", "村"),
        ("location", "位置"),
        ("content", "诉求内容"),
        ("reason", "原因"),
        ("something.unknown", "有误"),
    ],
)
def test_every_api_field_error_reads_in_chinese(path: str, fragment: str) -> None:
    assert fragment in labels.field_message(path)


def test_field_errors_keep_the_api_path_as_the_form_key() -> None:
    assert set(labels.field_errors({"citizen.phone": "bad", "content": "too long"})) == {"citizen.phone", "content"}


def test_pages_load_only_the_services_own_assets() -> None:
    client = _app().test_client()
    page = client.get("/")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # no CDN, nothing off the service
    with client.get("/static/app.css") as asset:  # a file response: closed, or pytest warns of an open file
        assert asset.status_code == 200 and "max-age" in asset.headers["Cache-Control"]


def test_health_and_metrics_answer_and_readiness_needs_the_services() -> None:
    client = _app().test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    assert b"petitions_http_requests_total" in client.get("/metrics").data


def test_an_unreachable_service_shows_the_try_again_page() -> None:
    page = _app().test_client().get("/submit")
    assert page.status_code == 503
    assert "稍后再试" in page.get_data(as_text=True)


def test_outside_development_the_development_key_is_refused() -> None:
    with pytest.raises(InsecureConfiguration):
        _app("production")


def test_outside_development_there_is_no_demo_login(tmp_path) -> None:  # type: ignore[no-untyped-def]
    accounts = tmp_path / "accounts.json"
    accounts.write_text("[]")
    settings = Settings(
        service="web",
        environment="production",
        secret_keys=("k" * 32,),
        extra={"WEB_DEMO_ACCOUNTS_FILE": str(accounts)},
    )
    client = create_app(settings, backends=NOWHERE).test_client()
    assert client.get("/staff/login").status_code == 503
    assert client.post("/staff/login", data={"staff_id": "S00001"}).status_code == 404


def test_staff_pages_need_a_session() -> None:
    client = _app().test_client()
    resp = client.get("/staff/queue")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/staff/login")


def test_a_session_keeps_the_token_server_side_and_expires() -> None:
    table = SessionTable()
    sid = table.open(StaffSession("tok-S1", "S1", "张三", "grid_leader", "某村", None))
    assert table.get(sid).token == "tok-S1"  # type: ignore[union-attr]
    assert "tok-S1" not in sid
    table.close(sid)
    assert table.get(sid) is None


def test_roles_see_what_they_may_do() -> None:
    def session(role: str) -> StaffSession:
        return StaffSession("t", "S", "n", role, "a", None)

    assert session("grid_leader").can("act") and not session("grid_leader").can("triage")
    assert not session("village_cadre").can("act") and not session("auditor").can("act")
    assert session("county_dispatcher").can("triage") and session("town_supervisor").can("escalations")


def logged_in(backends: Backends, staff: StaffSession) -> FlaskClient:
    """A test client of the web app over `backends`, logged in as `staff`."""
    app = create_app(Settings(service="web", environment="development"), backends=backends)
    sid = app.extensions["sessions"].open(staff)
    client = app.test_client()
    with client.session_transaction() as session:
        session["sid"] = sid
    return client


class QueueBackends(Backends):
    """Routing names 150 open orders and loads those asked for by id (recorded); sla answers its batch
    read for the ids asked, and records them."""

    def __init__(self) -> None:
        super().__init__({s: "http://127.0.0.1:9" for s in ("intake", "routing", "sla", "stats")})
        self.asked: list[list[str]] = []
        self.loaded: list[list[str]] = []
        self.listed = [f"JZ20250310{n:06d}" for n in range(150)]

    def call(self, service, method, path, **kw):  # type: ignore[no-untyped-def,override]
        ids = self.listed
        if service == "routing" and path.startswith("/v1/workorders/ids?"):
            return Answer(200, {"petition_ids": ids[: int(path.split("limit=")[1])]})
        if service == "routing":
            assert path.startswith("/v1/workorders?ids="), path
            wanted = path.split("=", 1)[1].split(",")
            self.loaded.append(wanted)
            orders = [{"petition_id": i, "status": "assigned", "assignment": {"village": "东村"}} for i in wanted]
            return Answer(200, {"workorders": orders})
        assert service == "sla" and path.startswith("/v1/sla/petitions?ids="), path
        asked = path.split("=", 1)[1].split(",")
        self.asked.append(asked)
        # a deadline per order, latest first in the id order, so the page must sort; one order unknown to sla
        clocks = {
            i: [
                {"clock": "contact", "state": "on_track", "deadline": f"2025-03-{10 + n // 24:02d}T{n % 24:02d}:00:00Z"}
            ]
            for n, i in enumerate(reversed(ids))
        }
        return Answer(
            200, {"items": [{"petition_id": i, "clocks": clocks[i]} for i in asked if i != ids[0] and i in clocks]}
        )


def test_the_queue_sorts_every_order_by_its_clock_and_loads_only_the_page_shown() -> None:
    backends = QueueBackends()
    client = logged_in(backends, StaffSession("tok-S1", "S1", "张三", "grid_leader", "某村", None))
    page = client.get("/staff/queue")
    assert page.status_code == 200
    assert sorted(len(a) for a in backends.asked) == [50, 100]  # two calls, not one per order
    html = page.get_data(as_text=True)
    shown = re.findall(r'data-order="([^"]+)"', html)
    # nearest deadline first (the last id has the earliest): 50 of 150, and only those were loaded
    assert len(shown) == 50 and shown[0] == "JZ20250310000149" and backends.loaded == [shown]
    assert html.count("data-deadline=") == 50 and "第 1/3 页，共 150 件" in html and "page=2" in html
    last = client.get("/staff/queue?page=3").get_data(as_text=True)
    shown = re.findall(r'data-order="([^"]+)"', last)
    # the order sla does not know comes last, without a clock
    assert len(shown) == 50 and shown[-1] == "JZ20250310000000" and last.count("data-deadline=") == 49
    assert "page=2" in last and "data-next" not in last
    assert client.get("/staff/queue?page=x").get_data(as_text=True).count("data-order=") == 50  # the first


class SlowListBackends(QueueBackends):
    """Routing names the orders only once sla has been asked for clocks and routing for orders (or
    after 2 s each), so a page that asks either after routing's answer waits out the 2 s."""

    def __init__(self) -> None:
        super().__init__()
        self.sla_asked = threading.Event()
        self.orders_asked = threading.Event()
        self.routing_waited: list[tuple[bool, bool]] = []

    def call(self, service, method, path, **kw):  # type: ignore[no-untyped-def,override]
        if service == "routing" and path.startswith("/v1/workorders/ids"):
            self.routing_waited.append((self.sla_asked.wait(2), self.orders_asked.wait(2)))
        elif service == "routing":
            self.orders_asked.set()
        else:
            self.sla_asked.set()
        return super().call(service, method, path, **kw)


def test_the_queue_reads_what_it_showed_last_while_routing_names_the_orders() -> None:
    backends = SlowListBackends()
    client = logged_in(backends, StaffSession("tok-S1", "S1", "张三", "grid_leader", "某村", None))
    first = client.get("/staff/queue")  # nothing shown before: sla and the page are read after routing's ids
    assert first.status_code == 200 and backends.routing_waited == [(False, False)]
    shown_first = re.findall(r'data-order="([^"]+)"', first.get_data(as_text=True))
    for event in (backends.sla_asked, backends.orders_asked):
        event.clear()
    backends.asked.clear()
    backends.loaded.clear()
    # a new order, whose deadline (in QueueBackends) is the nearest of all
    backends.listed = [*backends.listed, "JZ20250311000001"]
    second = client.get("/staff/queue")
    assert second.status_code == 200 and backends.routing_waited[-1] == (True, True)  # asked at once
    # the clocks of the 150 listed before in the first calls, then only the order new since
    assert sorted(len(a) for a in backends.asked) == [1, 50, 100] and backends.asked[-1] == ["JZ20250311000001"]
    # the page shown before, with routing's ids; then the new order alone, which comes first
    assert backends.loaded == [shown_first, ["JZ20250311000001"]]
    html = second.get_data(as_text=True)
    shown = re.findall(r'data-order="([^"]+)"', html)
    assert shown == ["JZ20250311000001", *shown_first[:49]] and "共 151 件" in html


def test_what_a_queue_showed_is_forgotten_at_logout() -> None:
    """The petition ids a session's queue listed are kept for its next load only while it lasts."""
    backends = QueueBackends()
    client = logged_in(backends, StaffSession("tok-S1", "S1", "张三", "grid_leader", "某村", None))
    assert client.get("/staff/queue").status_code == 200
    with client.session_transaction() as cookie:
        sid = cookie["sid"]
    sessions = client.application.extensions["sessions"]
    assert len(sessions.last_queue(sid).listed) == 150 and len(sessions.last_queue(sid).shown) == 50
    assert client.post("/staff/logout").status_code == 303
    assert sessions.last_queue(sid) == LastQueue()
    sessions.remember_queue(sid, LastQueue(("JZ20250310000001",), ()))  # a load that ended after the logout
    assert sessions.last_queue(sid) == LastQueue()


class TriageBackends(Backends):
    """Routing's triage list: as many orders as asked for, oldest first when asked; records the params."""

    def __init__(self) -> None:
        super().__init__({s: "http://127.0.0.1:9" for s in ("intake", "routing", "sla", "stats")})
        self.params: list[dict[str, object]] = []

    def call(self, service, method, path, **kw):  # type: ignore[no-untyped-def,override]
        if path == "/v1/areas":
            return Answer(200, {"towns": [{"town_id": "T01", "name": "东镇", "villages": []}]})
        assert service == "routing" and path == "/v1/workorders", (service, path)
        params = kw["params"]
        self.params.append(params)
        orders = [
            {
                "petition_id": f"JZ20250310{n:06d}",
                "status": "assigned",
                "route": "triage",
                "category": "roads",
                "assigned_at": f"2025-03-10T{n // 60:02d}:{n % 60:02d}:00Z",
                "assignment": {"grid_id": None},
            }
            for n in range(int(params["limit"]))
        ]
        return Answer(200, {"workorders": orders})


def test_the_triage_page_shows_the_orders_waiting_longest_a_page_at_a_time() -> None:
    backends = TriageBackends()
    client = logged_in(backends, StaffSession("tok-D", "D", "李四", "county_dispatcher", "全县", None))
    page = client.get("/staff/triage")
    assert page.status_code == 200
    assert backends.params == [{"triage": "true", "order": "oldest", "limit": 50}]
    html = page.get_data(as_text=True)
    shown = re.findall(r'data-triage="([^"]+)"', html)
    assert len(shown) == 50 and shown[0] == "JZ20250310000000"
    assert "data-more" in html and "最多显示等待最久的 50 件" in html


class FullQueueBackends(QueueBackends):
    """Routing names as many orders as the queue asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.listed = [f"JZ20250312{n:06d}" for n in range(1000)]


def test_a_queue_that_reached_its_limit_says_it_lists_only_the_most_recent_orders() -> None:
    supervisor = StaffSession("tok-T", "T", "王五", "town_supervisor", "城关镇", "T01")
    full = logged_in(FullQueueBackends(), supervisor).get("/staff/queue").get_data(as_text=True)
    assert len(re.findall(r'data-order="', full)) == 50 and "共 200 件" in full
    assert "data-cut" in full and "只列出最近派发的 200 件工单" in full and "/staff/escalations" in full
    short = logged_in(QueueBackends(), supervisor).get("/staff/queue").get_data(as_text=True)
    assert "data-cut" not in short
