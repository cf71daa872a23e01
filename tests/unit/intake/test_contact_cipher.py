"""Contact details are sealed field by field under a named key, and open only where they were sealed."""

from __future__ import annotations

import pytest

from petition_common.auth import InsecureConfiguration
from petition_common.config import DEVELOPMENT_CONTACT_KEYS, Settings
from services.intake.contacts import ContactCipher, ContactKeys, KeyUnavailable, generate_key_spec

OLD, NEW = generate_key_spec("k1"), generate_key_spec("k2")
FIELDS = {"name": "刘洋", "phone": "13812341234", "address": "幸福路12号"}


def test_fields_open_under_their_key_and_hold_no_clear_text():
    cipher = ContactCipher(ContactKeys.parse([OLD]))
    doc = cipher.seal("c1", FIELDS)
    assert doc["kid"] == "k1"
    assert all(FIELDS[k].encode() not in bytes(v) for k, v in doc["fields"].items())
    assert cipher.open(doc) == FIELDS
    # a fresh nonce per field and record: the same value never gives the same ciphertext
    assert cipher.seal("c1", FIELDS)["fields"]["phone"] != doc["fields"]["phone"]


def test_a_ciphertext_moved_to_another_record_or_field_does_not_open():
    cipher = ContactCipher(ContactKeys.parse([OLD]))
    doc = cipher.seal("c1", FIELDS)
    with pytest.raises(KeyUnavailable):
        cipher.open({**doc, "_id": "c2"})
    with pytest.raises(KeyUnavailable):
        cipher.open({**doc, "fields": {"name": doc["fields"]["phone"]}})


def test_the_first_key_encrypts_all_decrypt_and_a_removed_key_opens_nothing():
    old_only = ContactCipher(ContactKeys.parse([OLD]))
    both = ContactCipher(ContactKeys.parse([NEW, OLD]))
    sealed_old = old_only.seal("c1", FIELDS)
    assert both.open(sealed_old) == FIELDS
    sealed_new = both.seal("c1", FIELDS)
    assert sealed_new["kid"] == "k2"
    with pytest.raises(KeyUnavailable):
        old_only.open(sealed_new)
    # a key with a reused id but other bytes is refused by the tag, not trusted by its name
    impostor = ContactCipher(ContactKeys.parse([generate_key_spec("k1")]))
    with pytest.raises(KeyUnavailable):
        impostor.open(sealed_old)


@pytest.mark.parametrize(
    "specs",
    [[], ["k1"], ["k1:short"], ["bad id!:" + OLD.split(":")[1]], [OLD, OLD]],
)
def test_malformed_keys_are_refused(specs):
    with pytest.raises(ValueError):
        ContactKeys.parse(specs)


def test_the_development_key_is_refused_outside_development():
    settings = Settings(service="intake", environment="production")
    assert settings.contact_keys == DEVELOPMENT_CONTACT_KEYS
    with pytest.raises(InsecureConfiguration, match="CONTACT_KEYS"):
        ContactKeys.from_settings(settings)
    assert ContactKeys.from_settings(settings.with_overrides(contact_keys=(NEW,))).current == "k2"
    assert ContactKeys.from_settings(Settings(service="intake")).current == "dev1"


def test_keys_come_from_the_environment_or_a_mounted_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTACT_KEYS", f"{NEW}, {OLD}")
    assert Settings.from_env("intake").contact_keys == (NEW, OLD)
    monkeypatch.delenv("CONTACT_KEYS")
    secret = tmp_path / "contact-keys"
    secret.write_text(f"# newest first\n{NEW}\n{OLD}\n")
    monkeypatch.setenv("CONTACT_KEYS_FILE", str(secret))
    assert Settings.from_env("intake").contact_keys == (NEW, OLD)
