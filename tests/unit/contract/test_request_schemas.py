"""Requests are checked against the contract's OpenAPI component schemas, field by field, in words that
never repeat what was sent."""

from __future__ import annotations

from petition_common.config import REPO_ROOT
from petition_common.request_schemas import RequestSchemas

INTAKE = RequestSchemas(REPO_ROOT / "contract", "intake")
ROUTING = RequestSchemas(REPO_ROOT / "contract", "routing")
GOOD = {
    "channel": "web",
    "category": "drainage",
    "content": "下水道堵了",
    "location": {"town": "王台镇", "village": "大王庄新村"},
    "citizen": {"name": "刘洋", "phone": "13812341234"},
}


def test_a_good_submission_has_no_errors() -> None:
    assert INTAKE.errors("PetitionSubmission", GOOD) == {}


def test_every_bad_field_is_named_with_its_dotted_path() -> None:
    bad = {
        **GOOD,
        "channel": "fax",
        "content": "<b>" * 2000,
        "location": {"village": "x", "grid_id": {"$ne": None}},
        "citizen": {"name": 7, "phone": "13812341234"},
    }
    errors = INTAKE.errors("PetitionSubmission", bad)
    assert errors == {
        "channel": "must be one of miniprogram, hotline, web, visit, other",
        "content": "must be at most 5000 characters",
        "location.town": "is required",
        "location.grid_id": "must be a string or null",
        "citizen.name": "must be a string",
    }
    assert "<b>" not in str(errors)


def test_staff_bodies_are_typed_and_bounded() -> None:
    assert ROUTING.errors("TransferRequest", {"grid_id": ["T01V01G001"], "reason": "因" * 1001}) == {
        "grid_id": "must be a string",
        "reason": "must be at most 1000 characters",
    }
    assert ROUTING.errors("ReplyRequest", {"resolution": "explained", "summary": "答" * 5001}) == {
        "summary": "must be at most 5000 characters"
    }
    assert ROUTING.errors("TransferRequest", {"reason": "换"}) == {"grid_id": "is required"}


def test_the_fields_a_schema_names() -> None:
    assert INTAKE.properties("WithdrawRequest") == {"tracking_code", "reason"}
