"""Keyed digests and signed credentials (petition_common/credentials.py)."""

from __future__ import annotations

import hashlib

import pytest

from petition_common.credentials import Signer


def test_a_digest_matches_its_secret_only_and_survives_key_rotation() -> None:
    old = Signer(["k1"])
    stored = old.digest("tracking", "code-1234")
    assert "code-1234" not in stored
    assert old.matches(stored, "tracking", "code-1234")
    assert not old.matches(stored, "tracking", "code-1235")
    assert not old.matches(stored, "other-purpose", "code-1234")
    rotated = Signer(["k2", "k1"])  # a new key signs, the old one still verifies
    assert rotated.matches(stored, "tracking", "code-1234")
    assert not Signer(["k2"]).matches(stored, "tracking", "code-1234")


def test_plain_sha256_digests_of_earlier_petitions_still_match() -> None:
    assert Signer(["k"]).matches(hashlib.sha256(b"code-1234").hexdigest(), "tracking", "code-1234")


def test_a_signature_binds_every_part_and_has_exactly_its_length() -> None:
    signer = Signer(["k"])
    tag = signer.sign("follow", "JZ20240717000123", "abc")
    assert signer.verify(tag, "follow", "JZ20240717000123", "abc")
    assert not signer.verify(tag, "follow", "JZ20240717000124", "abc")
    assert not signer.verify(tag[:-1], "follow", "JZ20240717000123", "abc")  # no short prefixes
    assert not signer.verify(tag, "follow", "JZ20240717000123abc", "")  # parts are separated
    assert not Signer(["other"]).verify(tag, "follow", "JZ20240717000123", "abc")


def test_a_signer_needs_a_key() -> None:
    with pytest.raises(ValueError):
        Signer([])
