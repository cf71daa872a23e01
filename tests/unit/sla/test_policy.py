from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from petition_kernel.sla.policy import PolicyError, SlaPolicy, load_policy, parse_policy

from .helpers import POLICY_FILE

CODES = {"emergency", "utilities", "roads"}


def _shipped() -> dict[str, Any]:
    return yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))


def test_shipped_policy(policy: SlaPolicy) -> None:
    d = policy.defaults
    assert (d.contact_hours, d.reply_working_days, d.warning_fraction) == (6, 5, 0.8)
    assert policy.pause_cap == timedelta(days=5)
    assert policy.pause_reasons == {"citizen_unreachable", "third_party", "citizen_deferred"}
    assert [(s.level, s.target, s.after_breach) for s in d.escalation] == [
        (1, "grid", timedelta(0)),
        (2, "town", timedelta(hours=24)),
        (3, "county", timedelta(hours=72)),
    ]
    assert policy.rules_for("emergency").contact_hours == 2
    assert policy.rules_for("utilities").contact_hours == 24
    assert policy.rules_for("utilities").reply_working_days == 5  # inherited
    assert policy.rules_for("roads") == d
    assert policy.rules_for("no_such_code") == d
    assert policy.rules_for(None) == d


def test_category_may_have_its_own_ladder() -> None:
    content = _shipped()
    content["categories"]["emergency"]["escalation"] = [
        {"level": 1, "after_breach_hours": 0},
        {"level": 2, "after_breach_hours": 2},
    ]
    policy = parse_policy(content, CODES)
    assert [s.after_breach for s in policy.rules_for("emergency").escalation] == [timedelta(0), timedelta(hours=2)]
    assert len(policy.defaults.escalation) == 3


def _set(path: str, value: Any) -> Any:
    def mutate(content: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = content
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (_set("defaults/contact_hours", -1), "defaults.contact_hours"),
        (_set("defaults/contact_hours", 0), "defaults.contact_hours"),
        (_set("defaults/contact_hours", "six"), "defaults.contact_hours"),
        (_set("defaults/reply_working_days", 2.5), "defaults.reply_working_days"),
        (_set("defaults/reply_working_days", True), "defaults.reply_working_days"),
        (_set("defaults/reply_working_days", _DELETE), "defaults.reply_working_days"),
        (_set("defaults/warning_fraction", 1), "defaults.warning_fraction"),
        (_set("defaults/pause_cap_days", 5), "defaults.pause_cap_days"),
        (_set("pauses/cap_days", -1), "pauses.cap_days"),
        (_set("pauses/reasons", ["citizen_unreachable", "holiday"]), "pauses.reasons[1]"),
        (_set("pauses/reasons", ["third_party", "third_party"]), "pauses.reasons"),
        (_set("pauses", _DELETE), "pauses"),
        (_set("escalation", []), "escalation"),
        (_set("escalation/1/level", 3), "escalation[1].level"),
        (_set("escalation/0/notify", "town"), "escalation[0].notify"),
        (_set("escalation/2/after_breach_hours", 24), "escalation[2].after_breach_hours"),
        (_set("escalation/1/after_breach_hours", _DELETE), "escalation[1].after_breach_hours"),
        (_set("escalation/1/when", 3), "escalation[1].when"),
        (_set("categories/emergency/contact_hours", 0), "categories.emergency.contact_hours"),
        (_set("categories/emergency/pause_cap_days", 1), "categories.emergency.pause_cap_days"),
        (_set("categories/emergncy", {"contact_hours": 2}), "categories.emergncy"),
        (_set("categories/utilities", 24), "categories.utilities"),
        (
            _set("categories/emergency/escalation", [{"level": 2, "after_breach_hours": 1}]),
            "categories.emergency.escalation[0].level",
        ),
        (_set("version", 2), "version"),
    ],
)
def test_errors_name_the_bad_key(mutate: Any, key: str) -> None:
    content = copy.deepcopy(_shipped())
    mutate(content)
    with pytest.raises(PolicyError) as info:
        parse_policy(content, CODES)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_unknown_category_codes_pass_without_a_code_list() -> None:
    content = _shipped()
    content["categories"]["made_up"] = {"contact_hours": 1}
    assert parse_policy(content).rules_for("made_up").contact_hours == 1


def test_load_policy_names_the_file(tmp_path: Path) -> None:
    content = _shipped()
    content["defaults"]["warning_fraction"] = 0
    path = tmp_path / "sla-policy.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"sla-policy\.yaml: defaults\.warning_fraction: "):
        load_policy(path)
    path.write_text("defaults: [", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)
