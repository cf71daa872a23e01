"""Citizens' credentials: keyed digests to store, and signed follow-only credentials to hand out.

A tracking code is the only thing between a petition and anyone who knows its (sequential) number,
so the database never holds one in a form that works: petitions and idempotency records keep a
keyed digest (HMAC-SHA256 with the server's secret key), and codes are compared in constant time.
Someone with a copy of the database but not the key can neither use nor test a code.

The key comes from configuration (SECRET_KEYS, petition_common/config.py). Several keys may be
given, comma-separated: the first signs, all verify, so a key can be rotated without logging every
citizen out. Petitions stored before keyed digests hold a plain SHA-256 of their code; it is still
accepted (the codes are 96 random bits, so the old digest was not guessable either).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

DIGEST_PREFIX = "h1:"


def _mac(key: str, purpose: str, parts: Sequence[str]) -> bytes:
    # purpose and parts separated by a byte no part contains, so ("a|b", "c") and ("a", "b|c") differ
    message = "\x1f".join([purpose, *parts]).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Signer:
    def __init__(self, keys: Sequence[str]):
        if not keys or any(not k for k in keys):
            raise ValueError("at least one non-empty secret key is required")
        self.keys = tuple(keys)

    # ---- digests of secrets the citizen holds (tracking codes)

    def digest(self, purpose: str, secret: str) -> str:
        """What to store instead of `secret`."""
        return DIGEST_PREFIX + _mac(self.keys[0], purpose, [secret]).hex()

    def matches(self, stored: str, purpose: str, secret: str) -> bool:
        """Whether `secret` is the one `stored` was made from, under any configured key."""
        if stored.startswith(DIGEST_PREFIX):
            return any(hmac.compare_digest(stored, DIGEST_PREFIX + _mac(k, purpose, [secret]).hex()) for k in self.keys)
        return hmac.compare_digest(stored, hashlib.sha256(secret.encode()).hexdigest())  # before keyed digests

    # ---- values only the server can make (follower ids and credentials)

    def sign(self, purpose: str, *parts: str, length: int = 24) -> str:
        """A URL-safe tag over `parts` (`length` characters of base64, 6 bits each)."""
        return _b64(_mac(self.keys[0], purpose, parts))[:length]

    def verify(self, tag: str, purpose: str, *parts: str, length: int = 24) -> bool:
        if len(tag) != length:
            return False
        return any(hmac.compare_digest(tag, _b64(_mac(k, purpose, parts))[:length]) for k in self.keys)
