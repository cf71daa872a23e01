"""Staff token files for development, tests and the benchmark (production issues its own tokens).

`county_tokens(county)` gives every grid leader, village cadre, town supervisor and the county
dispatcher of a generated county the token `tok-<staff_id>`; `write_tokens_file` stores their
SHA-256 digests in the format petition_common.auth reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from countysim import County
from petition_common.auth import token_digest


def token_for(staff_id: str) -> str:
    return f"tok-{staff_id}"


def county_tokens(county: County) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in county.staff:
        if s.role == "helper":
            continue
        entry: dict[str, Any] = {"staff_id": s.staff_id, "role": s.role}
        if s.town_id:
            entry["town_id"] = s.town_id
        if s.village_id:
            entry["village_id"] = s.village_id
        if s.grid_ids:
            entry["grid_ids"] = sorted(s.grid_ids)
        out[token_for(s.staff_id)] = entry
    out["tok-auditor"] = {"staff_id": "A000001", "role": "auditor"}
    return out


def write_tokens_file(path: Path, tokens: dict[str, dict[str, Any]]) -> Path:
    entries = [{"sha256": token_digest(token), **entry} for token, entry in tokens.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"tokens": entries}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
