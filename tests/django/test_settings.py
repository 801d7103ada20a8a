"""`settings.PERFKIT` is read once, checked, and every bad key is named."""

from __future__ import annotations

import pytest

from perfkit.django.conf import get_settings, parse
from perfkit.errors import ConfigurationError


def test_the_app_is_installed_and_its_settings_parsed() -> None:
    """The test project's PERFKIT (a monitor token) comes back as perfkit's MonitorConfig."""
    from django.apps import apps

    assert apps.get_app_config("perfkit").name == "perfkit.django"
    assert get_settings().monitor.token == "test-token"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"colour": 1}, "PERFKIT['colour']"),
        ({"rules": "x"}, "PERFKIT['rules']"),
        ({"rules": [{"nmae": "a"}]}, "PERFKIT['rules'][0]"),
        ({"web": {"compres": True}}, "PERFKIT['web']"),
        ({"rate_limit": "100/minute", "web": {"rate_limit": "1/s"}}, "PERFKIT['rate_limit']"),
        ({"databases": "default"}, "PERFKIT['databases']"),
        ({"cache": 3}, "PERFKIT['cache']"),
        ([1], "PERFKIT"),
    ],
)
def test_bad_settings_name_the_key(raw: object, named: str) -> None:
    """Each malformed PERFKIT setting raises ConfigurationError naming the key."""
    with pytest.raises(ConfigurationError) as err:
        parse(raw)
    assert err.value.setting == named


def test_shortcuts_fill_the_web_config() -> None:
    """Top-level `rules` and `rate_limit` land in the WebConfig; `monitor: False` switches it off."""
    parsed = parse(
        {"rules": [{"name": "ticket-list", "cache_ttl": 300}], "rate_limit": "100/minute", "monitor": False}
    )
    assert parsed.web.rules[0].cache_ttl == 300
    assert (parsed.web.default_limit.limit, parsed.web.default_limit.period) == (100, 60.0)
    assert parsed.monitor is None
