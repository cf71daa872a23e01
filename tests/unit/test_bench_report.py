"""The benchmark's Markdown report: the ratios to the raw ceiling and the sections it must carry."""

import pytest

from petition_bench.report import render


def _result():
    return {
        "started_at": "2026-11-26 23:00 UTC",
        "finished_at": "2026-11-26 23:30 UTC",
        "seconds": 1800.0,
        "command": "bench/run --stages ceilings,replay",
        "machine": {
            "cores": 2,
            "cpu": "Test CPU",
            "memory_gib": 24.0,
            "kernel": "6.1",
            "python": "3.11.7",
            "kafka": "4.1.1",
            "database": "FerretDB",
        },
        "stages": {
            "ceilings": {
                "kafka": {"message_bytes": 900, "partitions": 4, "produce_per_s": 20_000.0, "consume_per_s": 40_000.0},
                "mongo": {"insert_per_s": 1000.0, "find_by_id_per_s": 1500.0, "update_by_id_per_s": 900.0},
            },
            "replay": {
                "petitions": 100,
                "days": 1,
                "slots": 4,
                "driver_workers": 16,
                "http_requests": 500,
                "wall_s": 100.0,
                "driver_s": 90.0,
                "driver_http_s": 60.0,
                "driver_barrier_s": 30.0,
                "stats_complete": True,
                "stats_summary": {
                    "accepted": 100,
                    "closed": 99,
                    "withdrawn": 1,
                    "reopened": 12,
                    "transferred": 5,
                    "rates": {
                        "closure_rate": 0.99,
                        "contacted_on_time_rate": 0.94,
                        "replied_on_time_rate": 0.9,
                        "satisfaction_rate": 0.95,
                    },
                    "sla": {"warned": 20, "breached": 10},
                },
                "retries": {},
                "failures": {},
                "events_consumed": {"routing": 2_000, "stats": 8_000},
                "events_per_s": {"routing": 20.0, "stats": 80.0},
                "cpu_s": {"ferretdb": 120.0, "routing-1": 20.0},
                "cores": 2,
                "queries": {"summary": {"requests": 10, "p50_ms": 2.0, "p99_ms": 5.0}},
                "rss_mib": {"routing-1": 150.0},
            },
        },
    }


def test_each_service_is_compared_with_the_raw_consume_rate_of_the_same_run():
    text = render(_result())
    assert "| routing | 2,000 | 20.0 | 0.1 % |" in text  # 20 / 40,000
    assert "| stats | 8,000 | 80.0 | 0.2 % |" in text
    assert "| ferretdb | 120 | 60.0 % |" in text  # 120 CPU s of 100 s × 2 cores
    assert "2 cores (Test CPU), 24.0 GiB" in text


def test_without_ceilings_in_the_run_no_ratio_is_invented():
    result = _result()
    del result["stages"]["ceilings"]
    text = render(result)
    assert "| routing | 2,000 | 20.0 | – |" in text
    assert "Raw ceilings" not in text


def test_the_replay_defaults_to_the_county_density_for_the_days_asked():
    from petition_bench.__main__ import parse_args

    assert parse_args([]).petitions == 396_000
    assert parse_args(["--days", "21"]).petitions == 22_784  # 396,000 × 21 / 365
    assert parse_args(["--days", "21", "--petitions", "500"]).petitions == 500
    with pytest.raises(SystemExit):
        parse_args(["--stages", "replay,warp-speed"])


def test_stop_after_needs_a_checkpoint_to_resume_from():
    from petition_bench.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--stages", "replay", "--stop-after", "30"])
    assert parse_args(["--stages", "replay", "--checkpoint", "/tmp/y", "--stop-after", "30"]).stop_after == 30


def _segment(first, last, minutes, died=False):
    seg = {
        "started_at": "2026-11-27 04:00 UTC",
        "code": "abc1234",
        "slots": [first, last],
        "wall_s": minutes * 60.0,
        "consumed": {"intake": 10, "routing": 20, "sla": 30, "stats": 40},
    }
    return {**seg, "died": True} if died else seg


def test_a_stopped_replay_says_how_far_it_got_and_how_to_go_on():
    result = _result()
    result["stages"]["replay"] = {
        "stopped": True,
        "petitions": 396_000,
        "days": 365,
        "slots": 1_460,
        "next_slot": 400,
        "next_day": "2025-04-10",
        "submitted": 108_000,
        "replay_s": 7_200.0,
        "segments": [_segment(0, 250, 80.0), _segment(250, 400, 40.0, died=True)],
        "events_consumed": {"intake": 20, "routing": 40, "sla": 60, "stats": 80},
    }
    text = render(result)
    assert "stopped; the same command continues it" in text
    assert "400 of 1,460 clock slots done (next: 2025-04-10), 108,000 petitions submitted" in text
    assert "120.0 min of replay in 2 segment(s)" in text
    assert "| 1 | 2026-11-27 04:00 UTC | abc1234 | 0–250 | 80.0 | 10 / 20 / 30 / 40 |" in text
    assert "| 2 (its process died; figures up to its last save) |" in text


def test_a_replay_run_in_segments_lists_them():
    result = _result()
    result["stages"]["replay"]["segments"] = [_segment(0, 2, 1.0), _segment(2, 4, 0.6)]
    text = render(result)
    assert "Run in 2 segments" in text
    assert "| 2 | 2026-11-27 04:00 UTC | abc1234 | 2–4 | 0.6 |" in text


def test_the_replay_state_survives_a_save_and_a_died_segment_is_kept(tmp_path):
    from petition_bench.replay import ReplayState

    state = ReplayState(3, 1.0, 7, "bdeadbeef", ["JZ1", None, "JZ3"], ["c1", None, "c3"], [False, False, True])
    state.next_slot, state.replay_s, state.retries = 2, 12.5, {"contact": 1}
    state.segments = [_segment(0, 1, 0.1)]
    state.open_segment = _segment(1, 2, 0.1)
    state.clean = False
    path = tmp_path / "replay-state.json"
    state.save(path)
    back = ReplayState.load(path)
    assert (back.prefix, back.ids, back.codes, back.duplicate) == (
        state.prefix,
        state.ids,
        state.codes,
        state.duplicate,
    )
    assert (back.next_slot, back.replay_s, back.retries, back.clean) == (2, 12.5, {"contact": 1}, False)
    assert [s.get("died", False) for s in back.segments] == [False, True]
    assert back.open_segment is None
