"""Issue #16, part 2: joining someone else's petition gives a follow-only credential of one's own. A
stranger who joins can follow the petition but not withdraw it, rate it or read what its submitter
wrote; one phone joins once; followers are documents of their own, not part of the petition; and a
join tells an absent petition from a closed one no better than a wrong guess."""

from __future__ import annotations

import requests
from pymongo import MongoClient

from tests.e2e.test_submission_event import BODY
from tests.support import MONGO

STRANGER = {"channel": "web", "citizen": {"name": "赵磊", "phone": "13700002222"}}


def test_a_stranger_who_joins_can_follow_but_not_take_over(fleet):
    intake = fleet.start("intake").url
    fleet.wait_ready()
    http = requests.Session()
    receipt = http.post(f"{intake}/v1/petitions", json=BODY, timeout=10).json()
    pid, owner_code = receipt["petition_id"], receipt["tracking_code"]

    joined = http.post(f"{intake}/v1/petitions/{pid}/join", json=STRANGER, timeout=10)
    assert joined.status_code == 201, joined.text
    follower_code = joined.json()["tracking_code"]
    assert follower_code != owner_code and joined.json()["affected_citizens"] == 2

    # following: the status and progress, none of what the submitter wrote
    view = http.get(f"{intake}/v1/petitions/{pid}", headers={"X-Tracking-Code": follower_code}, timeout=10)
    assert view.status_code == 200, view.text
    assert view.json()["status"] == "submitted" and "content" not in view.json()
    assert "刘" not in view.text and "13812341234" not in view.text

    # acting: only the submitter's code; the follower's answers exactly as a wrong code would
    for action, body in (("withdraw", {}), ("feedback", {"satisfaction": "dissatisfied"})):
        resp = http.post(
            f"{intake}/v1/petitions/{pid}/{action}", json={"tracking_code": follower_code, **body}, timeout=10
        )
        assert resp.status_code == 404, (action, resp.text)
    mine = http.get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": owner_code}, timeout=10).json()
    assert mine["status"] == "submitted"

    # the credential is bound to its petition: it opens no other
    other = http.post(f"{intake}/v1/petitions", json={**BODY, "category": "roads"}, timeout=10).json()
    resp = http.get(
        f"{intake}/v1/petitions/{other['petition_id']}", params={"tracking_code": follower_code}, timeout=10
    )
    assert resp.status_code == 404
    # and a forged one (right shape, wrong signature) opens nothing
    forged = follower_code[:-4] + ("AAAA" if not follower_code.endswith("AAAA") else "BBBB")
    assert http.get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": forged}, timeout=10).status_code == 404

    # one phone joins once: the same follower again, not another one
    again = http.post(f"{intake}/v1/petitions/{pid}/join", json=STRANGER, timeout=10)
    assert again.status_code == 201 and again.json()["tracking_code"] == follower_code
    assert again.json()["affected_citizens"] == 2

    # the follower is a document of its own; the petition holds neither them nor their credential
    with MongoClient(MONGO) as client:
        db = client[f"{fleet.env['MONGO_DB_PREFIX']}intake"]
        commits = list(db["petitions_commits"].find({"aggregate_id": pid}))
        followers = list(db["followers"].find({"petition_id": pid}))
    assert len(followers) == 1 and followers[0]["_id"].startswith(f"{pid}:")
    assert all("13700002222" not in str(c) and "followers" not in c["state"] for c in commits)

    # the submitter still can
    resp = http.post(f"{intake}/v1/petitions/{pid}/withdraw", json={"tracking_code": owner_code}, timeout=10)
    assert resp.status_code == 200 and resp.json()["status"] == "withdrawn"


def test_a_join_does_not_tell_absent_from_closed(fleet):
    intake = fleet.start("intake").url
    fleet.wait_ready()
    http = requests.Session()
    receipt = http.post(f"{intake}/v1/petitions", json=BODY, timeout=10).json()
    pid = receipt["petition_id"]
    http.post(f"{intake}/v1/petitions/{pid}/withdraw", json={"tracking_code": receipt["tracking_code"]}, timeout=10)
    absent = pid[:-6] + "999999"

    withdrawn = http.post(f"{intake}/v1/petitions/{pid}/join", json=STRANGER, timeout=10)
    missing = http.post(f"{intake}/v1/petitions/{absent}/join", json=STRANGER, timeout=10)
    assert (withdrawn.status_code, withdrawn.json()) == (missing.status_code, missing.json())
    assert withdrawn.status_code == 404
