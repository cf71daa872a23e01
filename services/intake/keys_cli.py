"""`petitions-keys`: the keys of citizens' contact details (services/intake/contacts.py).

    petitions-keys generate k2026b      # a new key, `k2026b:<base64>`, for CONTACT_KEYS / CONTACT_KEYS_FILE
    petitions-keys status               # how many records each key holds
    petitions-keys rotate               # re-encrypt every record under the first configured key

Rotation without downtime (docs/operations.md, "Rotating the contact key"): put the new key first in
CONTACT_KEYS with the old one after it and restart intake (it now encrypts with the new key and reads
both); run `petitions-keys rotate` with the same configuration while intake keeps serving (it prints
its progress and may be run again: it only touches records under another key); when `status` shows
only the new key, remove the old one from the configuration and destroy it.
"""

from __future__ import annotations

import argparse
import sys
import time

from pymongo import MongoClient

from petition_common.config import Settings
from services.intake.contacts import ContactCipher, ContactKeys, ContactStore, RotationProgress, generate_key_spec


def _store(settings: Settings, client: MongoClient) -> ContactStore:
    return ContactStore(client[settings.database]["contacts"], ContactCipher(ContactKeys.from_settings(settings)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="petitions-keys", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="print a new key for CONTACT_KEYS")
    gen.add_argument("kid", help="the new key's id (letters, digits, _ . -), e.g. k2026b")
    commands.add_parser("status", help="records per key id")
    commands.add_parser("rotate", help="re-encrypt every record under the first configured key")
    args = parser.parse_args(argv)

    if args.command == "generate":
        print(generate_key_spec(args.kid))
        return 0
    settings = Settings.from_env("intake")
    with MongoClient(settings.mongo_uri, tz_aware=True) as client:
        store = _store(settings, client)
        if args.command == "status":
            counts = store.count_by_key()
            for kid, n in sorted(counts.items()):
                print(f"{kid}\t{n}\t{'(current)' if kid == store.cipher.current else ''}")
            return 0
        started = time.monotonic()

        def progress(p: RotationProgress) -> None:
            print(f"rotate: {p.seen} checked, {p.rotated} re-encrypted, {p.gone} erased meanwhile", flush=True)

        done = store.rotate(progress)
        left = {k: n for k, n in store.count_by_key().items() if k != store.cipher.current}
        print(
            f"rotate: done in {time.monotonic() - started:.1f} s: {done.rotated} records now under "
            f"{store.cipher.current}; under other keys: {left or 'none'}"
        )
        return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
