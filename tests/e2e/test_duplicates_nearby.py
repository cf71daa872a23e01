"""Duplicates (重复件) are linked, not rejected; a citizen can find an open petition near them and join it."""

from __future__ import annotations

import requests

from tests.e2e.test_submission_event import BODY
from tests.support import read_topic

HERE = {"lat": 36.2101, "lon": 120.0502}


def test_duplicate_is_linked_and_nearby_petitions_can_be_joined(fleet):
    intake = fleet.start("intake").url
    fleet.wait_ready()
    http = requests.Session()
    first_body = {**BODY, "location": {**BODY["location"], **HERE}}
    first = http.post(f"{intake}/v1/petitions", json=first_body, timeout=10).json()
    assert first["duplicate_of"] is None

    # the same phone, category and near-identical text within 24 h: linked to the first
    again = {**first_body, "content": BODY["content"] + "！"}
    second = http.post(f"{intake}/v1/petitions", json=again, timeout=10).json()
    assert second["duplicate_of"] == first["petition_id"]
    # another phone with the same text is not a duplicate
    other = {**first_body, "citizen": {"name": "王芳", "phone": "13900001111"}}
    assert http.post(f"{intake}/v1/petitions", json=other, timeout=10).json()["duplicate_of"] is None

    # near me: the open drainage petitions within 500 m, without personal data
    found = http.get(f"{intake}/v1/petitions/nearby", params={**HERE, "category": "drainage"}, timeout=10).json()
    ids = [p["petition_id"] for p in found["items"]]
    assert first["petition_id"] in ids and second["petition_id"] not in ids  # duplicates are not offered
    text = str(found)
    assert "13812341234" not in text and "138****" not in text and "刘" not in text
    far = http.get(
        f"{intake}/v1/petitions/nearby", params={"lat": 36.40, "lon": 120.2, "category": "drainage"}, timeout=10
    ).json()
    assert far["count"] == 0
    assert (
        http.get(f"{intake}/v1/petitions/nearby", params={**HERE, "category": "roads"}, timeout=10).json()["count"] == 0
    )
    bad = http.get(f"{intake}/v1/petitions/nearby", params={"lat": "x", "category": "ufo"}, timeout=10)
    assert bad.status_code == 400 and {"lat", "lon", "category"} <= set(bad.json()["error"]["fields"])

    # joining instead of filing: a tracking code of one's own, one more affected citizen, no new petition
    joined = http.post(
        f"{intake}/v1/petitions/{first['petition_id']}/join",
        json={"channel": "web", "citizen": {"name": "赵磊", "phone": "13700002222"}},
        timeout=10,
    )
    assert joined.status_code == 201, joined.text
    view = http.get(
        f"{intake}/v1/petitions/{first['petition_id']}",
        params={"tracking_code": joined.json()["tracking_code"]},
        timeout=10,
    ).json()
    # 1 + the duplicate + the joiner
    assert view["affected_citizens"] == 3
    bad_join = http.post(
        f"{intake}/v1/petitions/{first['petition_id']}/join",
        json={"channel": "web", "citizen": {"phone": "1"}},
        timeout=10,
    )
    assert bad_join.status_code == 400 and "citizen.phone" in bad_join.json()["error"]["fields"]

    topic = f"{fleet.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"
    events = read_topic(topic, lambda ms: len(ms) >= 3)
    by_id = {m["key"]: m["value"]["data"] for m in events}
    assert len(events) == 3  # the join published nothing, created nothing
    assert by_id[second["petition_id"]]["duplicate_of"] == first["petition_id"]
