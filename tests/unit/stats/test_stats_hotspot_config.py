import pytest

from petition_kernel.taxonomy import load_categories
from services.stats.domain.hotspot_config import (
    DEFAULT_PATH,
    HotspotConfig,
    Rule,
    config_from_dict,
    config_from_yaml,
)

CATEGORIES = load_categories()


def test_the_shipped_file_parses_against_the_category_list():
    config = config_from_yaml(DEFAULT_PATH.read_text("utf-8"), categories=CATEGORIES)
    grid = config.rule("grid", "environment")
    # sized to the reference county's ~1,085 petitions a day (config/hotspots.yaml says how)
    assert (grid.threshold, grid.window_hours, grid.baseline_days, grid.min_count) == (7, 72, 28, 5)
    assert config.rule("village", "roads").threshold == 15
    assert config.rule("town", "roads").threshold == 70
    assert config.rule("grid", "emergency").window_hours == 24
    assert config.rule("grid", "emergency").threshold == 3
    assert config.rule("town", "public_safety").threshold == 30
    assert config.lateness_hours == 24


def test_built_in_defaults_match_the_brief():
    config = HotspotConfig()
    assert [config.rule(lv, "x").threshold for lv in ("grid", "village", "town")] == [4, 5, 15]
    assert config.rule("grid", "x").alpha == 1e-5


def test_precedence_most_specific_wins():
    config = config_from_dict(
        {
            "defaults": {"window_hours": 48, "alpha": 1e-4},
            "levels": {"town": {"threshold": 20}},
            "categories": {"roads": {"window_hours": 24, "town": {"threshold": 7}}},
        }
    )
    assert config.rule("town", "other") == Rule(window_hours=48, threshold=20, alpha=1e-4)
    assert config.rule("town", "roads") == Rule(window_hours=24, threshold=7, alpha=1e-4)
    assert config.rule("grid", "roads") == Rule(window_hours=24, threshold=4, alpha=1e-4)
    assert config.rule("grid", "other") == Rule(window_hours=48, threshold=4, alpha=1e-4)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"defaults": {"treshold": 3}}, "unknown fields"),
        ({"levels": {"county": {"threshold": 3}}}, "unknown levels"),
        ({"categories": {"ufo": {"threshold": 3}}}, "unknown category"),
        ({"levels": {"grid": {"threshold": 2.5}}}, "integer"),
        ({"levels": {"grid": {"threshold": 0}}}, "threshold"),
        ({"defaults": {"alpha": 1.5}}, "alpha"),
        ({"defaults": {"min_baseline_days": 40}}, "min_baseline_days"),
        ({"defaults": {"alpha": "small"}}, "number"),
        ({"lateness_hours": -1}, "lateness"),
        ({"thresholds": {}}, "top-level"),
    ],
)
def test_mistakes_are_refused_with_their_place(data, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict(data, categories=CATEGORIES)
