"""Masking a citizen's name and phone always gives what the contract's event schema accepts."""

from __future__ import annotations

import random

import pytest

from petition_common.config import REPO_ROOT
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from services.intake import domain

VALIDATOR = ContractValidator(REPO_ROOT / "contract")
BASE = {
    "petition_id": "JZ20240717000123",
    "channel": "web",
    "category": "drainage",
    "content": "下水道堵了",
    "location": {"town": "", "village": ""},
    "submitted_at": "2024-07-17T00:30:00Z",
}


def _event_with(name: str, phone: str) -> Event:
    citizen = {"name_masked": domain.mask_name(name), "phone_masked": domain.mask_phone(phone)}
    return Event(
        type="petition.submitted",
        source="petitions/intake",
        subject=BASE["petition_id"],
        data={**BASE, "citizen": citizen},
    )


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("刘洋", "刘*"),
        ("欧阳娜娜", "欧***"),
        ("1号楼住户", "*****"),
        ("３号", "**"),
        ("🚰", "**"),
        ("*", "**"),
        ("\u202e刘", "**"),
        ("x", "x*"),
    ],
)
def test_a_masked_name_shows_only_a_leading_letter(name: str, masked: str) -> None:
    assert domain.mask_name(name) == masked
    VALIDATOR.validate(_event_with(name, "13812341234"))


def test_any_name_a_citizen_may_give_masks_to_a_valid_event() -> None:
    rng = random.Random(16)
    alphabet = "刘欧阳1２３ 　*\u202e\u200b🚰aZ\u0301\u00a0-'·"
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))).strip() or "x"
        phone = rng.choice(["13812341234", "0532-88881234", "010-1234567"])
        VALIDATOR.validate(_event_with(name, phone))
