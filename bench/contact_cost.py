"""CPU each submission adds for personal data (issue 19): masking, sealing, opening; in-process, no I/O.

.venv/bin/python bench/contact_cost.py
"""

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.personal_data

from services.intake import domain
from services.intake.contacts import ContactCipher, ContactKeys, generate_key_spec
from services.intake.domain import contact_fields, masked_content, masked_location
from tests.e2e.test_personal_data import body_of
from tests.personal_data import people

PASSES = 5
CATEGORIES = {"drainage", "roads", "utilities", "social_security"}


def per_item_us(fn, items) -> float:
    started = time.process_time()
    for _ in range(PASSES):
        for item in items:
            fn(item)
    return (time.process_time() - started) / (PASSES * len(items)) * 1e6


def main() -> None:
    rng = random.Random(1)
    subs = [domain.validate_submission(body_of(p, rng), CATEGORIES) for p in people(2000, 3)]
    cipher = ContactCipher(ContactKeys.parse([generate_key_spec("k")]))
    docs = [cipher.seal("c123", contact_fields(s)) for s in subs]
    mask_us = per_item_us(lambda s: (masked_content(s), masked_location(s.location)), subs)
    seal_us = per_item_us(lambda s: cipher.seal("c123", contact_fields(s)), subs)
    print(f"mask text and address: {mask_us:.1f} µs CPU")
    print(f"seal 4 fields (AES-256-GCM): {seal_us:.1f} µs CPU")
    print(f"open 4 fields: {per_item_us(cipher.open, docs):.1f} µs CPU")


if __name__ == "__main__":
    main()
