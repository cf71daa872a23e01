"""The HTTP layer of stats without the stack: tokens, scopes and field-level 400s (a table injected)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from petition_common.auth import Staff
from petition_common.config import RateLimitSettings, Settings
from services.stats.app import create_app
from services.stats.domain.facts import INDEX, N_COUNTERS
from services.stats.read.table import Chunk, Table

D = date(2024, 7, 1).toordinal()


@pytest.fixture
def client(tmp_path: Path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"tokens": []}), encoding="utf-8")
    # no database here: the rate limiter's counts live in it (tests/e2e/test_rate_limits.py covers them)
    settings = Settings(
        service="stats",
        staff_tokens_file=tokens,
        dependency_timeout_s=0.2,
        rate_limits=RateLimitSettings(enabled=False),
    )
    app = create_app(settings, start_background=False)
    directory = app.extensions["tokens"]
    directory.add("county", Staff("S1", "county_dispatcher"))
    directory.add("town", Staff("S2", "town_supervisor", town_id="T01"))
    loader = app.extensions["stats"].loader
    values = [[0] * N_COUNTERS, [0] * N_COUNTERS]
    values[0][INDEX["accepted"]] = 3
    values[1][INDEX["accepted"]] = 4
    keys = [
        [D, "T01V01G001", "东村新村", "城关街道", "roads", "county_transport_bureau", "web"],
        [D, "T02V01G001", "西村新村", "河口镇", "roads", "county_transport_bureau", "web"],
    ]
    loader.table = Table.build([Chunk.decode(keys, values, loader.dictionary)], loader.dictionary)
    yield app.test_client()
    app.extensions["runtime"].shutdown(timeout_s=1)


def get(client, path: str, token: str | None = "county", **params: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, query_string=params, headers=headers)


def test_a_token_is_required(client):
    r = get(client, "/v1/stats/summary", token=None)
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    assert get(client, "/v1/stats/summary", token="nonsense").status_code == 401


def test_county_staff_see_the_county(client):
    r = get(client, "/v1/stats/summary")
    assert r.status_code == 200 and r.json["accepted"] == 7


def test_town_staff_see_their_town_and_not_others(client):
    assert get(client, "/v1/stats/summary", token="town").json["accepted"] == 3
    assert get(client, "/v1/stats/summary", token="town", town="城关街道").json["accepted"] == 3
    r = get(client, "/v1/stats/summary", token="town", town="河口镇")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


def test_invalid_parameters_are_400_with_every_field_named(client):
    r = get(client, "/v1/stats/breakdown", by="street", **{"from": "2024-07-01T12:00:00Z", "to": "x", "bogus": "1"})
    assert r.status_code == 400
    assert set(r.json["error"]["fields"]) == {"by", "from", "to", "bogus"}
    r = get(client, "/v1/stats/ranking", level="town")
    assert r.status_code == 400 and set(r.json["error"]["fields"]) == {"metric"}


def test_ranking_and_timeseries_answer(client):
    r = get(client, "/v1/stats/ranking", level="town", metric="closure_rate")
    assert r.status_code == 200 and [i["key"] for i in r.json["items"]] == ["河口镇", "城关街道"]
    r = get(client, "/v1/stats/timeseries", interval="month")
    assert r.status_code == 200 and r.json["points"][0]["accepted"] == 7
