"""Outside development a service refuses to start with credentials anyone can read in the code, or with
static staff tokens at all: staff come from the identity provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from petition_common.auth import InsecureConfiguration, staff_directory, token_digest
from petition_common.config import REPO_ROOT, Settings
from petition_devtools.tokens import write_tokens_file

DEV_FILE = REPO_ROOT / "config" / "staff-tokens.yaml"
KEYS = ("a-real-secret-key-from-the-vault",)


ISSUER = "https://id.example.gov.cn/realms/county"


def settings(tokens: Path | None, **changes: object) -> Settings:
    return Settings(
        service="intake", staff_tokens_file=tokens, environment="production", secret_keys=KEYS, oidc_issuer=ISSUER
    ).with_overrides(**changes)


def own_tokens(tmp_path: Path) -> Path:
    return write_tokens_file(tmp_path / "tokens.yaml", {"s3cr3t-9f2c": {"staff_id": "D1", "role": "county_dispatcher"}})


def test_production_with_a_provider_and_its_own_keys_starts_and_takes_no_static_token(tmp_path: Path) -> None:
    directory = staff_directory(settings(None))
    assert directory.oidc is not None and directory.oidc.issuer == ISSUER
    assert directory.oidc.audience == "petitions-api"
    assert directory.authenticate("Bearer dev-dispatcher") is None
    assert not len(directory)


@pytest.mark.parametrize(
    ("tokens", "keys", "named"),
    [
        ("dev", KEYS, "S000001"),  # the file the README prints the tokens of
        ("county", KEYS, "T01"),  # a test county's tok-<staff id>
        ("own", KEYS, "static staff tokens \\(D1\\) are for development only"),
        ("none", None, "SECRET_KEYS is not set"),
    ],
)
def test_production_refuses_public_or_missing_credentials(tmp_path: Path, tokens: str, keys, named: str) -> None:
    files = {
        "dev": DEV_FILE,
        "county": write_tokens_file(
            tmp_path / "county.yaml", {"tok-T01": {"staff_id": "T01", "role": "town_supervisor", "town_id": "T01"}}
        ),
        "own": own_tokens(tmp_path),
        "none": None,
    }
    changes = {} if keys else {"secret_keys": Settings(service="x").secret_keys}
    with pytest.raises(InsecureConfiguration, match=named):
        staff_directory(settings(files[tokens], **changes))


def test_development_takes_the_development_file() -> None:
    directory = staff_directory(Settings(service="intake", staff_tokens_file=DEV_FILE))
    assert directory.authenticate("Bearer dev-dispatcher") is not None
    assert token_digest("dev-dispatcher") in dict(directory.entries())


def test_production_without_an_identity_provider_refuses() -> None:
    with pytest.raises(InsecureConfiguration, match="no identity provider: set OIDC_ISSUER"):
        staff_directory(settings(None, oidc_issuer=None))


def test_an_empty_tokens_file_is_no_static_token(tmp_path: Path) -> None:
    assert not len(staff_directory(settings(write_tokens_file(tmp_path / "empty.yaml", {}))))
