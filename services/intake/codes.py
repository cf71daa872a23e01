"""Everything intake derives from the server key (SECRET_KEYS; petition_common.credentials).

- a submitter's tracking code: 96 bits derived from a random nonce, so that a replayed
  Idempotency-Key is answered with the same code without storing it; stored only as a keyed digest;
- a follower's credential, `F<follower id>.<signature>`: it lets them follow one petition and
  nothing more (submitters' codes are URL-safe base64, which may start with "F" too but never
  contains ".", and a wrong guess only fails);
- the citizen's pseudonym in events (`citizen.ref`), the ids of contacts records, the duplicate
  index's blind keys and the digests of the request bodies an Idempotency-Key is bound to.
Each is a keyed HMAC, never a plain hash: a phone number's plain hash is reversed by hashing every
number there is.
"""

from __future__ import annotations

from petition_common.credentials import Signer

TRACKING = "tracking"  # the purpose of tracking-code digests and derivations (credentials.Signer)
CITIZEN = "citizen"  # the purpose of citizens' pseudonymous references (`citizen.ref` in events)
CITIZEN_REF_LENGTH = 22  # base64 characters: 132 bits
CONTACT = "contact"  # the purpose of contact ids, derived from the petition (retries find the same record)
DUPLICATES = "duplicates"  # the purpose of the duplicate index's blind keys (phone and category)
FINGERPRINT = "fingerprint"  # the purpose of the digests of request bodies an Idempotency-Key is bound to
FOLLOWER, FOLLOW = "follower", "follow"  # the purposes of follower ids and of their credentials
FOLLOWER_PREFIX = "F"


def duplicate_key(signer: Signer, phone: str, category: str) -> str:
    """The duplicate index's key of a citizen's petitions in one category: a blind index (keyed HMAC)."""
    return signer.sign(DUPLICATES, phone, category, length=32)


def is_follower_credential(code: str) -> bool:
    return code.startswith(FOLLOWER_PREFIX) and "." in code


class Codes:
    def __init__(self, signer: Signer):
        self.signer = signer

    def tracking_code(self, pid: str, nonce: str) -> str:
        return self.signer.sign(TRACKING, pid, nonce, length=16)

    def tracking_digest(self, code: str) -> str:
        return self.signer.digest(TRACKING, code)

    def is_tracking_code(self, stored_digest: str, code: str) -> bool:
        return self.signer.matches(stored_digest, TRACKING, code)

    def citizen_ref(self, phone: str) -> str:
        """A pseudonym of the citizen with this normalised phone: the same for all their petitions, so
        that stats can count distinct citizens and the rate limits count per citizen, but useless to
        anyone without the server key. It changes when the first key of SECRET_KEYS does."""
        return self.signer.sign(CITIZEN, phone, length=CITIZEN_REF_LENGTH)

    def contact_id(self, pid: str, *follower_id: str) -> str:
        """The contacts record of a petition's submitter, or of one of its followers."""
        return "c" + self.signer.sign(CONTACT, pid, *follower_id, length=22)

    def duplicate_key(self, phone: str, category: str) -> str:
        return duplicate_key(self.signer, phone, category)

    def fingerprint_digest(self, fingerprint: str) -> str:
        return self.signer.digest(FINGERPRINT, fingerprint)

    def same_fingerprint(self, stored: str, fingerprint: str) -> bool:
        # claims written before keyed fingerprints hold the plain one
        return stored == fingerprint or self.signer.matches(stored, FINGERPRINT, fingerprint)

    def follower_id(self, pid: str, phone: str) -> str:
        """One per petition and phone: a phone joins a petition once."""
        return self.signer.sign(FOLLOWER, pid, phone, length=16)

    def follower_credential(self, pid: str, follower_id: str) -> str:
        return f"{FOLLOWER_PREFIX}{follower_id}.{self.signer.sign(FOLLOW, pid, follower_id)}"

    def follower_of(self, pid: str, credential: str) -> str | None:
        """The follower id a credential of this petition names, if its signature holds."""
        follower_id, _, tag = credential.removeprefix(FOLLOWER_PREFIX).partition(".")
        return follower_id if self.signer.verify(tag, FOLLOW, pid, follower_id) else None
