"""The rate limits' pure parts: windows and keys, configuration, scaling, and who the client is."""

from __future__ import annotations

import pytest
from flask import Flask
from limits import parse

from petition_common.config import RateLimitSettings
from petition_common.credentials import Signer
from petition_common.ratelimit import (
    CLIENT_HEADER,
    DEFAULT_LIMITS,
    client_address,
    client_headers,
    effective_limits,
    scaled,
    vouched_client,
)
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


def test_a_client_address_vouched_for_by_a_service_of_ours_is_signed_and_fresh():
    signer, other = Signer(["server-key"]), Signer(["someone-else"])
    now = 1_800_000_030.0
    header = client_headers(signer, "203.0.113.7", now)[CLIENT_HEADER]
    assert vouched_client(signer, header, now) == "203.0.113.7"
    assert vouched_client(signer, header, now + 60) == "203.0.113.7"  # the next minute still
    assert vouched_client(signer, header, now + 150) is None  # a copy seen on the network goes stale
    assert vouched_client(other, header, now) is None  # not our key
    assert vouched_client(signer, header.replace("203.0.113.7", "203.0.113.8"), now) is None
    for junk in (None, "", "203.0.113.7", "a;b;c", ";1;x"):
        assert vouched_client(signer, junk, now) is None
    app = Flask("t")
    ipv6 = client_headers(signer, "2001:db8::1")
    with app.test_request_context(headers=ipv6, environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        assert client_address(0, signer) == "2001:db8::1"
        assert client_address(0) == "10.0.0.1"  # a service that does not check signatures ignores it
