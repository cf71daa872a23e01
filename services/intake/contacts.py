"""Citizens' contact details, stored once and encrypted field by field (个人信息保护法).

A submitter's or follower's name, phone, street address and the original text they wrote live in
one document of the `contacts` collection, keyed by an opaque id (`contact_id`); petitions, their
commits, the outbox, idempotency records and every event carry only that id and masked forms.

Each field is sealed with AES-256-GCM (`cryptography`) under the record's key: a fresh 96-bit
nonce per field, and the record's id and the field's name as associated data, so a ciphertext
copied into another record or field does not open. The record names its key (`kid`), so keys rotate
without downtime: the first configured key encrypts, all configured keys decrypt, and
`petitions-keys rotate` re-encrypts the records still under an older key (docs/operations.md).

Erasure is crypto-shredding: deleting the record removes the only ciphertext of these values;
what the platform keeps of the petition was masked before it was written.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from petition_common.auth import InsecureConfiguration
from petition_common.config import Settings
from petition_common.mongo import insert_new

NONCE_BYTES = 12
KEY_BYTES = 32
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class KeyUnavailable(Exception):
    """The record's key is not configured, or its ciphertext does not open under it."""


@dataclass(frozen=True)
class ContactKeys:
    """Key id -> AES-256 key; `current` encrypts."""

    current: str
    keys: Mapping[str, bytes]

    @classmethod
    def parse(cls, specs: Iterable[str]) -> ContactKeys:
        """`<kid>:<URL-safe base64 of 32 bytes>` each, the first the current one."""
        keys: dict[str, bytes] = {}
        for spec in specs:
            kid, sep, encoded = spec.partition(":")
            if not sep or not _KID.match(kid):
                raise ValueError("a contact key is `<id>:<base64 key>` with an id of letters, digits, _ . -")
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except ValueError as exc:
                raise ValueError(f"contact key {kid}: not base64") from exc
            if len(raw) != KEY_BYTES:
                raise ValueError(f"contact key {kid}: {len(raw)} bytes, AES-256 needs {KEY_BYTES}")
            if kid in keys:
                raise ValueError(f"contact key id {kid} is given twice")
            keys[kid] = raw
        if not keys:
            raise ValueError("at least one contact key is required (CONTACT_KEYS or CONTACT_KEYS_FILE)")
        return cls(next(iter(keys)), keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> ContactKeys:
        """The configured keys; outside development, never the public development key."""
        if not settings.development and settings.uses_development_contact_key:
            raise InsecureConfiguration(
                f"{settings.service} refuses to start outside development (PETITIONS_ENV={settings.environment}): "
                "CONTACT_KEYS is the public development key; citizens' contact details would be readable by "
                "anyone with a database dump. See docs/operations.md, 'Credentials'."
            )
        return cls.parse(settings.contact_keys)


def generate_key_spec(kid: str) -> str:
    """A new key for CONTACT_KEYS: `<kid>:<base64>` from the operating system's random source."""
    if not _KID.match(kid):
        raise ValueError("a key id is 1-32 letters, digits, _ . -")
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip('=')}"


class ContactCipher:
    def __init__(self, keys: ContactKeys):
        self.keys = keys
        self._aead = {kid: AESGCM(key) for kid, key in keys.keys.items()}

    @property
    def current(self) -> str:
        return self.keys.current

    def seal(self, contact_id: str, fields: Mapping[str, str], kid: str | None = None) -> dict[str, Any]:
        """The stored document of these fields, under key `kid` (default: the current one)."""
        kid = kid or self.current
        aead = self._aead[kid]
        sealed = {}
        for name, value in fields.items():
            nonce = os.urandom(NONCE_BYTES)
            sealed[name] = bson.Binary(nonce + aead.encrypt(nonce, value.encode(), _aad(contact_id, name)))
        return {"_id": contact_id, "kid": kid, "fields": sealed}

    def open(self, doc: Mapping[str, Any]) -> dict[str, str]:
        """The fields of a stored document; KeyUnavailable if its key is not configured or wrong."""
        aead = self._aead.get(doc.get("kid", ""))
        if aead is None:
            raise KeyUnavailable(f"contact {doc['_id']}: key {doc.get('kid')!r} is not configured")
        out = {}
        for name, blob in doc["fields"].items():
            raw = bytes(blob)
            try:
                out[name] = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(doc["_id"], name)).decode()
            except InvalidTag as exc:
                raise KeyUnavailable(f"contact {doc['_id']}: {name} does not open under key {doc['kid']}") from exc
        return out


def _aad(contact_id: str, field: str) -> bytes:
    return f"{contact_id}\x1f{field}".encode()


@dataclass(frozen=True)
class RotationProgress:
    seen: int
    rotated: int
    gone: int  # erased while the rotation ran


class ContactStore:
    """The `contacts` collection: written once per citizen and petition, read by `_id`, re-encrypted by
    a rotation, deleted by erasure. Nothing else reads it."""

    def __init__(self, collection: Collection, cipher: ContactCipher):
        self.collection = collection
        self.cipher = cipher

    def put(self, contact_id: str, fields: Mapping[str, str]) -> None:
        """Store the fields unless a record with this id exists (a retry of the same submission: the
        id is derived from the petition, and the request's fingerprint guarantees the same body)."""
        with contextlib.suppress(DuplicateKeyError):
            self.collection.insert_one(self.cipher.seal(contact_id, {k: v for k, v in fields.items() if v}))

    def put_many(self, records: Iterable[tuple[str, Mapping[str, str]]]) -> None:
        """`put` for several records, in one insert (a batch of submissions)."""
        docs = [self.cipher.seal(cid, {k: v for k, v in fields.items() if v}) for cid, fields in records]
        insert_new(self.collection, docs)

    def get(self, contact_id: str) -> dict[str, str] | None:
        """The decrypted fields, or None once erased."""
        doc = self.collection.find_one({"_id": contact_id})
        return None if doc is None else self.cipher.open(doc)

    def shred(self, contact_ids: Iterable[str]) -> int:
        """Erase these records (crypto-shredding: their ciphertext goes, so no key opens them again)."""
        return sum(self.collection.delete_one({"_id": cid}).deleted_count for cid in contact_ids)

    def rotate(self, progress: Callable[[RotationProgress], None] | None = None, batch: int = 200) -> RotationProgress:
        """Re-encrypt every record not under the current key, one record at a time, while the service
        keeps running. A record is replaced only if it is still under the key it was read with, so a
        concurrent erasure is never undone; running it again picks up whatever it missed."""
        seen = rotated = gone = 0
        current = self.cipher.current
        stale = list(self.collection.find({"kid": {"$ne": current}}))
        for doc in stale:
            seen += 1
            sealed = self.cipher.seal(doc["_id"], self.cipher.open(doc))
            result = self.collection.replace_one({"_id": doc["_id"], "kid": doc["kid"]}, sealed)
            rotated += result.modified_count
            gone += 1 - result.matched_count
            if progress is not None and (seen % batch == 0 or seen == len(stale)):
                progress(RotationProgress(seen, rotated, gone))
        return RotationProgress(seen, rotated, gone)

    def count_by_key(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for doc in self.collection.find({}, {"kid": 1}):
            counts[doc.get("kid", "?")] = counts.get(doc.get("kid", "?"), 0) + 1
        return counts
