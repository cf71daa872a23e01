"""`petitions-deadletters`: list, inspect and replay the messages consumers gave up on.

    petitions-deadletters list [--reason R] [--consumer C]
    petitions-deadletters show 0:17                # partition:offset on the dead-letter topic
    petitions-deadletters replay 0:17 2:3          # back to their original topics, headers cleaned
    petitions-deadletters replay --all --reason handler_failed

A replay republishes the original key, value and headers (without the dlq_* ones, plus
`dlq_replayed_from`) to the original topic, or to `--to TOPIC`. Replaying twice is harmless: consumers
de-duplicate by CloudEvent id. Reads KAFKA_BOOTSTRAP_SERVERS and KAFKA_TOPIC_PREFIX like the services.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from petition_common.config import Settings
from petition_common.topic_config import producer_codec
from petition_common.topics import DEADLETTER


@dataclass
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return ""

    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith("dlq_")]


def read_all(settings: Settings, timeout_s: float = 5.0) -> list[DeadLetter]:
    """Every message on the dead-letter topic, from the beginning to the current end."""
    topic = settings.topic(DEADLETTER)
    consumer = KafkaConsumer(**settings.kafka_client(), enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[DeadLetter] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=int(timeout_s * 1000))
            if not batch:
                break
            for records in batch.values():
                out.extend(DeadLetter(r.partition, r.offset, r.key, r.value, list(r.headers or [])) for r in records)
        return sorted(out, key=lambda d: (d.partition, d.offset))
    finally:
        consumer.close()


def replay(settings: Settings, letters: list[DeadLetter], to_topic: str | None = None) -> int:
    producer = KafkaProducer(
        **settings.kafka_client(),
        acks="all",
        enable_idempotence=True,
        compression_type=producer_codec(settings),
    )
    try:
        for letter in letters:
            topic = to_topic or letter.header("dlq_original_topic")
            headers = [*letter.original_headers(), ("dlq_replayed_from", f"dlq:{letter.ref}".encode())]
            producer.send(topic, key=letter.key, value=letter.value, headers=headers).get(timeout=30)
    finally:
        producer.close()
    return len(letters)


def _select(letters: list[DeadLetter], args: argparse.Namespace) -> list[DeadLetter]:
    chosen = letters
    if getattr(args, "refs", None):
        wanted = set(args.refs)
        chosen = [d for d in letters if d.ref in wanted]
        missing = wanted - {d.ref for d in chosen}
        if missing:
            sys.exit(f"no dead letter at {', '.join(sorted(missing))}")
    if args.reason:
        chosen = [d for d in chosen if d.header("dlq_reason") == args.reason]
    if args.consumer:
        chosen = [d for d in chosen if args.consumer in d.header("dlq_consumer")]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="petitions-deadletters", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("list", "show", "replay"):
        p = sub.add_parser(name)
        p.add_argument("--reason", help="only this dlq_reason (unparseable, schema_invalid, handler_failed)")
        p.add_argument("--consumer", help="only letters from this consumer (substring of dlq_consumer)")
        if name in ("show", "replay"):
            p.add_argument("refs", nargs="*", metavar="PARTITION:OFFSET")
        if name == "replay":
            p.add_argument("--all", action="store_true", help="replay every selected letter")
            p.add_argument("--to", dest="to_topic", help="publish here instead of the original topic")
    args = parser.parse_args(argv)
    settings = Settings.from_env("deadletters")
    letters = _select(read_all(settings), args)

    if args.command == "list":
        print(f"{'ref':>8}  {'at':24}  {'reason':15}  {'consumer':24}  {'original':34}  error")
        for d in letters:
            original = (
                f"{d.header('dlq_original_topic')}[{d.header('dlq_original_partition')}]"
                f"@{d.header('dlq_original_offset')}"
            )
            print(
                f"{d.ref:>8}  {d.header('dlq_at'):24}  {d.header('dlq_reason'):15}  "
                f"{d.header('dlq_consumer')[:24]:24}  {original[:34]:34}  {d.header('dlq_error')[:80]}"
            )
        print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    elif args.command == "show":
        if not args.refs:
            parser.error("show needs PARTITION:OFFSET")
        for d in letters:
            print(f"== {d.ref}")
            for k, v in d.headers:
                print(f"  {k}: {v.decode('utf-8', 'replace')}")
            print(f"  key: {d.key.decode('utf-8', 'replace') if d.key is not None else None}")
            try:
                value = orjson.dumps(orjson.loads(d.value or b"null"), option=orjson.OPT_INDENT_2).decode()
            except orjson.JSONDecodeError:
                value = repr(d.value[:2000] if d.value else d.value)
            print(value)
    else:
        if not args.refs and not args.all:
            parser.error("replay needs PARTITION:OFFSET ... or --all")
        count = replay(settings, letters, args.to_topic)
        print(f"replayed {count} dead letter(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
