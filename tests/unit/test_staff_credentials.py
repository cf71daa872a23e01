"""Outside development a service refuses to start with credentials anyone can read in the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from petition_common.auth import InsecureConfiguration, staff_directory, token_digest
from petition_common.config import REPO_ROOT, Settings
from petition_devtools.tokens import write_tokens_file

DEV_FILE = REPO_ROOT / "config" / "staff-tokens.yaml"
KEYS = ("a-real-secret-key-from-the-vault",)


def settings(tokens: Path, **changes: object) -> Settings:
    return Settings(
        service="intake", staff_tokens_file=tokens, environment="production", secret_keys=KEYS
    ).with_overrides(**changes)


def own_tokens(tmp_path: Path) -> Path:
    return write_tokens_file(tmp_path / "tokens.yaml", {"s3cr3t-9f2c": {"staff_id": "D1", "role": "county_dispatcher"}})


def test_production_with_its_own_tokens_and_keys_starts(tmp_path: Path) -> None:
    directory = staff_directory(settings(own_tokens(tmp_path)))
    staff = directory.authenticate("Bearer s3cr3t-9f2c")
    assert staff is not None and staff.staff_id == "D1"


@pytest.mark.parametrize(
    ("tokens", "keys", "named"),
    [
        ("dev", KEYS, "S000001"),  # the file the README prints the tokens of
        ("county", KEYS, "T01"),  # a test county's tok-<staff id>
        ("missing", KEYS, "no staff tokens file"),
        ("empty", KEYS, "holds no staff tokens"),
        ("own", None, "SECRET_KEYS is not set"),
    ],
)
def test_production_refuses_public_or_missing_credentials(tmp_path: Path, tokens: str, keys, named: str) -> None:
    files = {
        "dev": DEV_FILE,
        "county": write_tokens_file(
            tmp_path / "county.yaml", {"tok-T01": {"staff_id": "T01", "role": "town_supervisor", "town_id": "T01"}}
        ),
        "missing": tmp_path / "nowhere.yaml",
        "empty": write_tokens_file(tmp_path / "empty.yaml", {}),
        "own": own_tokens(tmp_path),
    }
    changes = {} if keys else {"secret_keys": Settings(service="x").secret_keys}
    with pytest.raises(InsecureConfiguration, match=named):
        staff_directory(settings(files[tokens], **changes))


def test_development_takes_the_development_file() -> None:
    directory = staff_directory(Settings(service="intake", staff_tokens_file=DEV_FILE))
    assert directory.authenticate("Bearer dev-dispatcher") is not None
    assert token_digest("dev-dispatcher") in dict(directory.entries())
