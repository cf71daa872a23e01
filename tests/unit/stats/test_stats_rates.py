"""Rates and Wilson intervals. Reference intervals: statsmodels proportion_confint(method="wilson")."""

import pytest

from petition_kernel.rates import METRICS, RATES, rank, rates, wilson


@pytest.mark.parametrize(
    ("x", "n", "rate", "low", "high"),
    [
        (0, 10, 0.0, 0.0, 0.2775328),
        (5, 10, 0.5, 0.2365931, 0.7634069),
        (94, 100, 0.94, 0.8752318, 0.9722139),
        (10, 10, 1.0, 0.7224672, 1.0),
        (3, 3, 1.0, 0.4385030, 1.0),
        (940, 1000, 0.94, 0.9235289, 0.9531035),
    ],
)
def test_wilson_known_values(x, n, rate, low, high):
    est = wilson(x, n)
    assert est.rate == pytest.approx(rate)
    assert est.low == pytest.approx(low, abs=1e-7)
    assert est.high == pytest.approx(high, abs=1e-7)
    assert est.n == n


def test_wilson_with_no_petitions_is_uninformative():
    assert wilson(0, 0) == (None, 0.0, 1.0, 0)
    rate, low, high, n = wilson(0, 0)  # unpacks as (rate, low, high, n)
    assert (rate, low, high, n) == (None, 0.0, 1.0, 0)


def test_wilson_confidence_widens_the_interval():
    narrow, wide = wilson(5, 10, 0.90), wilson(5, 10, 0.99)
    assert wide.low < narrow.low < 0.5 < narrow.high < wide.high


@pytest.mark.parametrize(("x", "n", "conf"), [(-1, 5, 0.95), (6, 5, 0.95), (1, -1, 0.95), (1, 5, 1.0)])
def test_wilson_rejects_nonsense(x, n, conf):
    with pytest.raises(ValueError):
        wilson(x, n, conf)


def test_the_county_rates_use_the_contract_definitions():
    row = {"accepted": 50, "contacted_on_time": 45, "replied_on_time": 35, "closed": 40,
           "satisfied": 20, "basically_satisfied": 10, "feedback": 40}  # fmt: skip
    assert rates(row) == {
        "closure_rate": 40 / 50,
        "contacted_on_time_rate": 45 / 50,
        "replied_on_time_rate": 35 / 50,
        "satisfaction_rate": (20 + 10) / 40,  # satisfied + basically_satisfied over petitions with feedback
    }
    assert METRICS["satisfaction_rate"].counts(row) == (30, 40)
    assert METRICS["response_rate"].counts(row) == (45, 50)  # the ranking's name of contacted_on_time_rate
    assert set(METRICS) == {"response_rate", "closure_rate", "satisfaction_rate"}


def test_a_rate_with_nothing_to_divide_by_is_null():
    row = dict.fromkeys(("accepted", "contacted_on_time", "replied_on_time", "closed", "satisfied",
                         "basically_satisfied", "feedback"), 0)  # fmt: skip
    assert rates(row) == {r.name: None for r in RATES}


def test_the_ranked_rate_is_the_reported_rate():
    """A ranking's rate and the summary's rate of the same counts are the same number, from one table."""
    row = {"id": "v1", "accepted": 7, "contacted_on_time": 3, "replied_on_time": 2, "closed": 5,
           "satisfied": 1, "basically_satisfied": 2, "feedback": 6}  # fmt: skip
    for metric, rate in METRICS.items():
        (ranked,) = rank([row], metric)
        assert ranked.rate == rates(row)[rate.name]


def test_rank_puts_a_lucky_small_village_below_a_large_good_one():
    rows = [{"id": "tiny", "closed": 3, "accepted": 3}, {"id": "big", "closed": 940, "accepted": 1000}]
    ranked = rank(rows, "closure_rate")
    assert [r.id for r in ranked] == ["big", "tiny"]
    assert [r.rank for r in ranked] == [1, 2]
    tiny = ranked[1]
    assert (tiny.rate, tiny.count, tiny.successes) == (1.0, 3, 3)
    assert tiny.low == pytest.approx(0.4385030, abs=1e-7) and tiny.high == 1.0


def test_worst_first_does_not_sink_an_unlucky_small_village():
    rows = [{"id": "tiny", "closed": 0, "accepted": 3}, {"id": "half", "closed": 500, "accepted": 1000}]
    assert [r.id for r in rank(rows, "closure_rate", worst_first=True)] == ["half", "tiny"]


def test_rank_ties_go_to_the_larger_count_then_the_smaller_id_and_empty_areas_last():
    rows = [
        {"id": "b", "contacted_on_time": 0, "accepted": 5},
        {"id": "a", "contacted_on_time": 0, "accepted": 5},
        {"id": "c", "contacted_on_time": 0, "accepted": 9},
        {"id": "empty", "contacted_on_time": 0, "accepted": 0},
    ]
    ranked = rank(rows, "response_rate")
    assert [r.id for r in ranked] == ["c", "a", "b", "empty"]
    assert ranked[-1].rate is None
    assert [r.id for r in rank(rows, "response_rate", worst_first=True)] == ["c", "a", "b", "empty"]


def test_ranked_row_keeps_the_input_fields():
    (row,) = rank([{"id": "v1", "name": "东村", "closed": 1, "accepted": 2}], "closure_rate")
    out = row.to_dict()
    assert out["name"] == "东村" and out["rank"] == 1 and out["count"] == 2 and out["rate"] == 0.5
    assert out["ci_low"] < 0.5 < out["ci_high"]


def test_rank_reports_missing_fields_and_unknown_metrics():
    with pytest.raises(KeyError, match="accepted"):
        rank([{"id": "v1", "closed": 1}], "closure_rate")
    with pytest.raises(KeyError):
        rank([], "happiness")
