"""The detector's partition merge releases records in time order and resumes from the right offsets."""

from __future__ import annotations

import random

from services.stats.domain.time_merge import TimeMerge


def test_a_partition_racing_ahead_is_held_back_until_the_others_catch_up():
    m = TimeMerge(["a", "b"])
    for offset, at in enumerate([10, 20, 30, 40]):
        m.add("a", offset, at, f"a{at}")
    assert list(m.release()) == []  # b has said nothing yet: it may still deliver something earlier
    m.add("b", 0, 15, "b15")
    assert [item for _, _, item in m.release()] == ["a10", "b15"]
    assert m.next_offset("a") == 1 and m.next_offset("b") == 1
    m.set_caught_up("b", True)  # b is at its end: nothing earlier can come from it
    assert [item for _, _, item in m.release()] == ["a20", "a30", "a40"]
    assert m.next_offset("a") == 4


def test_untimed_records_only_move_offsets():
    m = TimeMerge(["a", "b"])
    m.add("a", 0, None, None)
    assert m.next_offset("a") == 1
    m.add("a", 1, 5, "a5")
    m.add("a", 2, None, None)  # behind a held record: it waits its turn
    assert m.next_offset("a") == 1
    m.set_caught_up("b", True)
    assert [item for _, _, item in m.release()] == ["a5"]
    assert m.next_offset("a") == 3
    assert m.next_offset("b") is None


def test_everything_comes_out_in_time_order_once_all_are_caught_up():
    rng = random.Random(7)
    m = TimeMerge([0, 1, 2])
    feeds = {s: sorted(rng.sample(range(10_000), 300)) for s in range(3)}
    out = []
    cursors = dict.fromkeys(feeds, 0)
    while any(cursors[s] < 300 for s in feeds):
        s = rng.choice([s for s in feeds if cursors[s] < 300])
        for _ in range(rng.randint(1, 50)):
            if cursors[s] < 300:
                m.add(s, cursors[s], feeds[s][cursors[s]], feeds[s][cursors[s]])
                cursors[s] += 1
        out.extend(item for _, _, item in m.release())
    for s in feeds:
        m.set_caught_up(s, True)
    out.extend(item for _, _, item in m.release())
    assert out == sorted(out) and len(out) == 900
