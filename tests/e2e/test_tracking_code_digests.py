"""Issue #16, part 6: intake's database holds no tracking code in a form that works: petitions keep a
keyed digest, idempotency records the nonce the code is derived from with the server's key. A
replayed Idempotency-Key still answers with the same code, and the code still opens the petition."""

from __future__ import annotations

import requests
from bson import json_util
from pymongo import MongoClient

from tests.e2e.test_submission_event import BODY
from tests.support import MONGO


def test_no_tracking_code_is_stored_in_plain_text(fleet):
    intake = fleet.start("intake").url
    fleet.wait_ready()
    http = requests.Session()
    headers = {"Idempotency-Key": "digest-check-1"}
    first = http.post(f"{intake}/v1/petitions", json=BODY, headers=headers, timeout=10)
    again = http.post(f"{intake}/v1/petitions", json=BODY, headers=headers, timeout=10)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    pid, code = first.json()["petition_id"], first.json()["tracking_code"]
    plain = http.post(f"{intake}/v1/petitions", json={**BODY, "category": "roads"}, timeout=10).json()
    joined = http.post(
        f"{intake}/v1/petitions/{pid}/join",
        json={"channel": "web", "citizen": {"name": "赵磊", "phone": "13700002222"}},
        timeout=10,
    ).json()

    with MongoClient(MONGO) as client:
        db = client[f"{fleet.env['MONGO_DB_PREFIX']}intake"]
        everything = "".join(json_util.dumps(doc) for name in db.list_collection_names() for doc in db[name].find({}))
    for secret in (code, plain["tracking_code"], joined["tracking_code"]):
        assert secret not in everything

    for petition, secret in ((pid, code), (plain["petition_id"], plain["tracking_code"])):
        resp = http.get(f"{intake}/v1/petitions/{petition}", params={"tracking_code": secret}, timeout=10)
        assert resp.status_code == 200, resp.text
