"""Rule path patterns match the whole path, control characters included (percent-decoded `%0A`)."""

from __future__ import annotations

from perfkit.web import Rule, WebConfig


def _config() -> WebConfig:
    return WebConfig(
        rules=[
            Rule(path="/account/*", cache_control="private, no-store"),
            Rule(path="/items/{id}", cache_control="public, max-age=60"),
            Rule(path="/status", cache_control="public, max-age=5"),
            Rule(path="/*", cache_control="public, max-age=300"),
        ],
        exclude=["/internal/*"],
    )


def test_a_newline_in_the_path_does_not_escape_a_private_rule() -> None:
    """`/account/x%0Ay` is still under `/account/*`: it never falls through to the public `/*` rule."""
    rule = _config().match("GET", "/account/x\ny", None)
    assert rule is not None and rule.cache_control == "private, no-store"


def test_a_trailing_newline_is_another_path() -> None:
    """An exact rule (`/status`) is not `/status\\n`: the pattern ends at the end of the path."""
    config = _config()
    exact, other = config.match("GET", "/status", None), config.match("GET", "/status\n", None)
    assert exact is not None and exact.cache_control == "public, max-age=5"
    assert other is not None and other.cache_control == "public, max-age=300"


def test_exclusions_cover_control_characters() -> None:
    """An excluded prefix stays excluded whatever follows it."""
    config = _config()
    assert config.excluded("/internal/a\nb")
    assert not config.excluded("/internals")
