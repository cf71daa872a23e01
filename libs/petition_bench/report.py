"""The machine the figures come from, and the Markdown rendering of a result (the JSON is the source)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

from petition_common.config import REPO_ROOT


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    pom = (REPO_ROOT / "deploy" / "local" / "pom.xml").read_text()
    kafka = re.search(r"<kafka.version>([^<]+)<", pom)
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kafka": kafka.group(1) if kafka else None,
        "database": "FerretDB v1.24.2 (SQLite backend, _id index fix)",
    }


def _f(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {result['started_at']} – {result['finished_at']} ({_f(result['seconds'] / 60, 1)} min) with "
        f"`{result['command']}`.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
        f"Apache Kafka {m['kafka']} (one KRaft node), {m['database']}. Everything — broker, database, services "
        "and the load generator — shares these cores.",
        "",
    ]
    st = result["stages"]
    raw_consume = None
    if "ceilings" in st:
        k, d = st["ceilings"]["kafka"], st["ceilings"]["mongo"]
        raw_consume = k["consume_per_s"]
        lines += [
            "## 1. Raw ceilings (same run)",
            "",
            "| part | operation | rate |",
            "|---|---|---|",
            f"| kafka-python | produce, {k['message_bytes']} B events, acks=all, idempotent | "
            f"{_f(k['produce_per_s'])} msg/s |",
            f"| kafka-python | consume (one consumer, {k['partitions']} partitions, bytes only) | "
            f"{_f(k['consume_per_s'])} msg/s |",
            f"| pymongo → FerretDB | `insert_one` | {_f(d['insert_per_s'])} /s |",
            f"| pymongo → FerretDB | `find_one` by `_id` | {_f(d['find_by_id_per_s'])} /s |",
            f"| pymongo → FerretDB | `update_one` by `_id` | {_f(d['update_by_id_per_s'])} /s |",
            "",
        ]
    if "intake" in st:
        it = st["intake"]
        g = it["gunicorn"]
        lines += [
            "## 2. Intake: submissions over HTTP",
            "",
            f"One intake instance: gunicorn with {g['workers']} worker × {g['threads']} threads; routing, sla and "
            "stats consume behind it. Closed loop (each client submits back to back):",
            "",
            "| clients | submissions/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['concurrency']} | {_f(r['per_s'])} | {_f(r['p50_ms'])} | {_f(r['p95_ms'])} | {_f(r['p99_ms'])} | "
            f"{sum(r['errors'].values()) if r['errors'] else 0} |"
            for r in it["levels"]
        ]
        lines += ["", f"Sustained rate with p99 < 200 ms: **{_f(it['sustained_per_s_at_p99_under_200ms'])}/s**.", ""]
        if it.get("batches"):
            lines += [
                "Beside them, the bulk path (`POST /v1/petitions/batch`, each client posting batches back to back):",
                "",
                "| petitions a batch | clients | petitions/s | batch p50 ms | batch p99 ms | refused items or errors |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {r['batch']} | {r['concurrency']} | {_f(r['per_s'])} | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} | "
                f"{sum(r['errors'].values()) if r['errors'] else 0} |"
                for r in it["batches"]
            ]
            lines += [""]
    if "latency" in st:
        la = st["latency"]
        ld = la["load"]
        lines += [
            "## 3. End-to-end latency at a steady rate",
            "",
            f"Open loop at {_f(ld['target_per_s'])}/s (achieved {_f(ld['achieved_per_s'], 1)}/s, "
            f"{ld['requests']} submissions; 201 p99 {_f(ld['p99_ms'])} ms).",
            "",
            "| from the 201 to | n | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
        ]
        for key, label in (
            ("to_assigned", "`petition.assigned` on Kafka"),
            ("to_stats_summary", "counted in the stats summary"),
        ):
            x = la[key]
            lines.append(
                f"| {label} | {x['n']} | {_f(x['p50_ms'])} | {_f(x['p95_ms'])} | {_f(x['p99_ms'])} "
                f"| {_f(x['max_ms'])} |"
            )
        lines += [
            "",
            f"The stats figure is polled every {la['stats_poll_interval_ms']} ms: the k-th 201 counts as in stats when "
            "the summary first shows k accepted.",
            "",
        ]
    if "replay" in st and st["replay"].get("stopped"):
        rp = st["replay"]
        lines += [
            "## 4. The year replay (stopped; the same command continues it)",
            "",
            f"{rp['petitions']:,} petitions over {rp['days']:g} days of 2025: {rp['next_slot']:,} of {rp['slots']:,} "
            f"clock slots done (next: {rp['next_day']}), {rp['submitted']:,} petitions submitted, "
            f"{_f(rp['replay_s'] / 60, 1)} min of replay in {len(rp['segments'])} segment(s).",
            "",
            *_segment_table(rp["segments"]),
        ]
    elif "replay" in st:
        rp = st["replay"]
        s = rp["stats_summary"]
        lines += [
            "## 4. The year replay",
            "",
            f"{rp['petitions']:,} petitions over {rp['days']:g} days of 2025 ({rp['slots']} clock slots), every "
            f"lifecycle driven over HTTP by {rp['driver_workers']} client threads: {rp['http_requests']:,} requests.",
            "",
            f"- Wall time until stats showed the whole year: **{_f(rp['wall_s'] / 60, 1)} min** "
            f"({'complete' if rp['stats_complete'] else 'INCOMPLETE'}); the driver finished its last slot at "
            f"{_f(rp['driver_s'] / 60, 1)} min (HTTP {_f(rp['driver_http_s'] / 60, 1)} min, waiting for consumers "
            f"{_f(rp['driver_barrier_s'] / 60, 1)} min).",
            f"- Stats at the end: {s['accepted']:,} accepted, {s['closed']:,} closed, "
            f"{s['withdrawn']:,} withdrawn, {s['reopened']:,} reopened, {s['transferred']:,} transferred; "
            f"closure {_pct(s['rates']['closure_rate'])}, response (contacted on time) "
            f"{_pct(s['rates']['contacted_on_time_rate'])}, "
            f"replied on time {_pct(s['rates']['replied_on_time_rate'])}, "
            f"satisfaction {_pct(s['rates']['satisfaction_rate'])}; SLA warned {s['sla']['warned']:,}, "
            f"breached {s['sla']['breached']:,}.",
            f"- Driver retries (precondition still in flight): {rp['retries'] or 'none'}; failures: "
            f"{rp['failures'] or 'none'}.",
        ]
        if len(rp.get("segments", [])) > 1:
            lines += [
                f"- Run in {len(rp['segments'])} segments, each stopped after a slot's barrier and resumed by the "
                "same command; the time is the sum of the segments' times (starting the services is not in it):",
                "",
                *_segment_table(rp["segments"]),
            ]
        lines += [
            "",
            "| service | events handled | events/s over the replay | ÷ raw consume rate |",
            "|---|---|---|---|",
        ]
        for svc, n in rp["events_consumed"].items():
            rate = rp["events_per_s"][svc]
            ratio = f"{100 * rate / raw_consume:.1f} %" if raw_consume else "–"
            lines.append(f"| {svc} | {n:,} | {_f(rate, 1)} | {ratio} |")
        if "cpu_s" in rp:
            capacity = rp["wall_s"] * rp["cores"]
            lines += [
                "",
                "Where the CPU went during the replay (user + system seconds of each process and its children):",
                "",
                "| process | CPU s | share of the machine |",
                "|---|---|---|",
            ]
            for name, used in sorted(rp["cpu_s"].items(), key=lambda kv: -kv[1]):
                lines.append(f"| {name} | {_f(used)} | {100 * used / capacity:.1f} % |")
        if rp.get("database_commands"):
            total = sum(rp["database_commands"].values())
            per = ", ".join(f"{c} {n / rp['petitions']:.1f}" for c, n in rp["database_commands"].items())
            lines += [
                "",
                f"Database commands FerretDB served during the replay: {total:,}, i.e. "
                f"{total / rp['petitions']:.1f} per petition ({per}); the benchmark's own barrier checks are "
                "among them.",
            ]
        if rp.get("service_commands"):
            sent = rp["service_commands"]
            lines += [
                "",
                f"The services' own count (petitions_db_commands_total): {sum(sent.values()) / rp['petitions']:.1f} "
                "commands per petition; by service, command and collection, the largest first:",
                "",
                "| service | command | collection | per petition |",
                "|---|---|---|---|",
            ]
            for key, n in list(sent.items())[:40]:
                service, command, *collection = key.split(" ")
                lines.append(f"| {service} | {command} | {' '.join(collection) or '-'} | {n / rp['petitions']:.2f} |")
        lines += [
            "",
            "## 6. Stats queries over the replayed year",
            "",
            "| query | n | p50 ms | p99 ms |",
            "|---|---|---|---|",
        ]
        for name, q in rp["queries"].items():
            lines.append(f"| {name} | {q['requests']} | {_f(q['p50_ms'], 1)} | {_f(q['p99_ms'], 1)} |")
        lines += ["", "## 7. Memory at the end of the replay", "", "| instance | RSS MiB |", "|---|---|"]
        lines += [f"| {name} | {_f(mib)} |" for name, mib in rp["rss_mib"].items()]
        lines.append("")
    if "scaleout" in st:
        so = st["scaleout"]
        lines += [
            "## 5. Scale-out: one and two instances of each consumer",
            "",
            f"A stream of {so['petitions']:,} submissions ({so['stream_events']:,} events on the intake topic, 4 "
            "partitions), made by intake alone over HTTP and copied into fresh namespaces, caught up from a backlog:",
            "",
            "| service | 1 instance events/s | 2 instances events/s | ratio | 1 instance ÷ raw consume |",
            "|---|---|---|---|---|",
        ]
        one, two = so["instances"]["1"], so["instances"]["2"]
        for svc in one:
            r1, r2 = one[svc]["per_s"], two[svc]["per_s"]
            ratio = f"{r2 / r1:.2f}×" if r1 else "–"
            raw = f"{100 * r1 / raw_consume:.1f} %" if raw_consume else "–"
            lines.append(f"| {svc} | {_f(r1)} | {_f(r2)} | {ratio} | {raw} |")
        h = so["intake_http"]
        lines += [
            "",
            f"Intake over HTTP, nothing consuming behind it, 32 clients: 1 instance {_f(h['1']['per_s'])}/s "
            f"(p99 {_f(h['1']['p99_ms'])} ms), 2 instances {_f(h['2']['per_s'])}/s (p99 {_f(h['2']['p99_ms'])} ms).",
            "",
        ]
    return "\n".join(lines)


def _segment_table(segments: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| segment | started | code | slots | minutes | events consumed (intake/routing/sla/stats) |",
        "|---|---|---|---|---|---|",
    ]
    for k, seg in enumerate(segments, 1):
        note = " (its process died; figures up to its last save)" if seg.get("died") else ""
        consumed = " / ".join(f"{seg['consumed'].get(s, 0):,}" for s in ("intake", "routing", "sla", "stats"))
        first, last = seg["slots"]
        lines.append(
            f"| {k}{note} | {seg['started_at']} | {seg.get('code', '?')} | {first:,}–{last:,} "
            f"| {_f(seg['wall_s'] / 60, 1)} | {consumed} |"
        )
    return lines
