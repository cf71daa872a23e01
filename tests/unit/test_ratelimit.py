"""The rate limits' pure parts: windows and keys, configuration, scaling, and who the client is."""

from __future__ import annotations

import pytest
from flask import Flask
from limits import parse

from petition_common.config import RateLimitSettings
from petition_common.ratelimit import DEFAULT_LIMITS, client_address, effective_limits, scaled
from petition_common.ratelimit_storage import limit_of, window_start


def test_the_limit_is_read_back_from_the_key_limits_builds():
    assert limit_of(parse("10/minute").key_for("addr:1.2.3.4", "intake.submit")) == (10, 60)
    assert limit_of(parse("5/day").key_for("citizen:a/b|c")) == (5, 86_400)  # separators inside a key
    assert limit_of(parse("3/2 hours").key_for("x")) == (3, 7_200)
    with pytest.raises(ValueError):
        limit_of("not/a/key")


def test_windows_are_aligned_to_the_epoch_so_every_instance_agrees():
    assert window_start(1_800_000_059.9, 60) == 1_800_000_000
    assert window_start(1_800_000_060.0, 60) == 1_800_000_060
    assert window_start(1_800_000_000 + 3_600 * 7, 86_400) % 86_400 == 0  # a day starts at 00:00 UTC


def test_limits_scale_up_rounding_and_never_to_zero():
    assert scaled("10/minute;100/day", 100) == "1000/1 minute;10000/1 day"
    assert scaled("5/day", 0.01) == "1/1 day"
    assert scaled("3/2 hours", 1.5) == "5/2 hour"


def test_configured_limits_override_by_name_and_bad_ones_stop_the_service():
    limits = effective_limits(RateLimitSettings(overrides={"STAFF": "3/minute"}, scale=2))
    assert limits["STAFF"] == "6/1 minute" and limits["SUBMIT_PHONE"] == "10/1 day"
    assert set(limits) == set(DEFAULT_LIMITS)
    with pytest.raises(ValueError, match="RATE_LIMIT_SUBMIT"):
        effective_limits(RateLimitSettings(overrides={"SUBMIT": "1/minute"}))
    with pytest.raises(ValueError, match="RATE_LIMIT_STAFF"):
        effective_limits(RateLimitSettings(overrides={"STAFF": "lots"}))


def test_settings_from_the_environment(monkeypatch):
    assert RateLimitSettings.from_env() == RateLimitSettings()
    monkeypatch.setenv("RATE_LIMITS", "off")
    monkeypatch.setenv("RATE_LIMIT_SCALE", "100")
    monkeypatch.setenv("RATE_LIMIT_STAFF", "3/minute")
    monkeypatch.setenv("TRUSTED_PROXIES", "2")
    settings = RateLimitSettings.from_env()
    assert (settings.enabled, settings.scale, settings.trusted_proxies) == (False, 100.0, 2)
    assert settings.overrides == {"STAFF": "3/minute"}
    monkeypatch.setenv("RATE_LIMITS", "maybe")
    with pytest.raises(ValueError):
        RateLimitSettings.from_env()


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (0, ["6.6.6.6"], "10.0.0.1"),  # no proxy trusted: the header is the client's own word
        (1, ["6.6.6.6, 203.0.113.5"], "203.0.113.5"),  # what our proxy appended, not what the client wrote
        (2, ["6.6.6.6, 203.0.113.5", "10.0.0.9"], "203.0.113.5"),  # two proxies, two header lines
        (2, ["203.0.113.5"], "10.0.0.1"),  # fewer hops than proxies: not through them, use the socket
    ],
)
def test_the_client_address_honours_only_trusted_proxies(trusted, forwarded, expected):
    app = Flask("t")
    headers = [("X-Forwarded-For", value) for value in forwarded]
    with app.test_request_context(headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        assert client_address(trusted) == expected
