"""The kernel's single homes of time and of the category taxonomy."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from petition_kernel.taxonomy import TaxonomyError, load_categories
from petition_kernel.times import BEIJING, format_time, from_bson, local_date, local_day_start, parse_time


def test_one_written_form_utc_milliseconds_and_z() -> None:
    moment = datetime(2024, 7, 17, 8, 30, 0, 123456, tzinfo=BEIJING)
    assert format_time(moment) == "2024-07-17T00:30:00.123Z"
    assert format_time(datetime(2024, 7, 17, tzinfo=UTC)) == "2024-07-17T00:00:00.000Z"


def test_written_and_read_back_is_the_same_instant_at_milliseconds() -> None:
    moment = datetime(2024, 7, 17, 0, 30, 0, 123000, tzinfo=UTC)
    assert parse_time(format_time(moment)) == moment


@pytest.mark.parametrize(
    "text", ["2024-07-17T08:30:00+08:00", "2024-07-17t00:30:00z", "2024-07-17T00:30:00.000Z", "2024-07-17T00:30:00Z"]
)
def test_parse_time_reads_rfc3339_with_any_offset_as_utc(text: str) -> None:
    parsed = parse_time(text)
    assert parsed == datetime(2024, 7, 17, 0, 30, tzinfo=UTC) and parsed.tzinfo is UTC


@pytest.mark.parametrize("value", ["2024-07-17T00:30:00", "2024-07-17", "soon", datetime(2024, 7, 17)])
def test_a_time_without_an_offset_is_refused(value: str | datetime) -> None:
    with pytest.raises(ValueError):
        parse_time(value)
    with pytest.raises(ValueError):
        format_time(datetime(2024, 7, 17))


def test_bson_dates_come_back_naive_and_are_utc() -> None:
    assert from_bson(datetime(2024, 7, 17, 1)) == datetime(2024, 7, 17, 1, tzinfo=UTC)
    assert from_bson(datetime(2024, 7, 17, 9, tzinfo=timezone(timedelta(hours=8)))).tzinfo is UTC


def test_the_day_is_beijings() -> None:
    assert local_date(datetime(2024, 7, 16, 16, tzinfo=UTC)) == date(2024, 7, 17)
    assert local_day_start(date(2024, 7, 17)) == datetime(2024, 7, 16, 16, tzinfo=UTC)


def test_the_taxonomy_has_names_departments_and_shares() -> None:
    categories = load_categories()
    assert categories["drainage"].department == "county_housing_bureau"
    assert categories["drainage"].name == "排水疏通"
    assert sum(c.share for c in categories.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[]", "categories"),
        ("categories: {}", "categories"),
        ("categories: {roads: {name: 道路}}", "categories.roads.department"),
        ("categories: {roads: {name: 道路, department: ''}}", "categories.roads.department"),
        ("categories: {roads: {name: 道路, department: d, share: lots}}", "categories.roads.share"),
        ("categories: {roads: 道路}", "categories.roads"),
        ("categories: [", "(file)"),
    ],
)
def test_a_malformed_taxonomy_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "categories.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TaxonomyError) as caught:
        load_categories(path)
    assert caught.value.key == key and str(path) in str(caught.value)
