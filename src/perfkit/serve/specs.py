"""`NAME=TARGET [option=value ...]`: the shape of `--job-type` and `--loader`, split in one place."""

from __future__ import annotations

from collections.abc import Collection

from perfkit.errors import ConfigurationError


def split_spec(
    setting: str, spec: str, allowed: Collection[str], shape: str
) -> tuple[str, str, dict[str, str]]:
    """(name, target, {option: value}) of `spec`; a missing `=`, an empty part or an option outside
    `allowed` is refused naming `setting`, the spec and (`shape`) what it should look like."""
    head, *opts = spec.split()
    name, sep, target = head.partition("=")
    if not sep or not name or not target:
        raise ConfigurationError(setting, f"{spec!r} is not {shape} [option=value ...]")
    options: dict[str, str] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or key not in allowed:
            raise ConfigurationError(setting, f"{spec!r}: option {opt!r}: use one of {list(allowed)}")
        options[key] = value
    return name, target, options
