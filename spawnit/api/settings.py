"""The server's and the workers' own settings read from their environment, each checked where it is read:
a bad value stops `spawnit serve` / `spawnit worker` with exit 2 and one line naming the variable, the
value and what is allowed (never a traceback, never a silent default)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingError(ValueError):
    """A setting of the environment that is not allowed; the message names the variable and the rule."""


def duration(environ: Mapping[str, str], variable: str, default: float, *, minimum: float = 1, maximum: float = 30 * 86400) -> float:
    """Seconds from ``3600``, ``90s``, ``10m``, ``24h`` or ``7d``; ``default`` when unset or empty."""
    text = (environ.get(variable) or "").strip()
    if not text:
        return default
    match = _DURATION.match(text)
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else -1
    if not minimum <= seconds <= maximum:
        raise SettingError(f"{variable}: {text!r} is not allowed; allowed: a duration from {_said(minimum)} to {_said(maximum)}, e.g. 600, 90s, 10m, 24h, 7d")
    return seconds


def integer(environ: Mapping[str, str], variable: str, default: int, *, minimum: int, maximum: int) -> int:
    text = (environ.get(variable) or "").strip()
    if not text:
        return default
    if not re.fullmatch(r"\d+", text) or not minimum <= int(text) <= maximum:
        raise SettingError(f"{variable}: {text!r} is not allowed; allowed: a whole number from {minimum} to {maximum}")
    return int(text)


def amount(environ: Mapping[str, str], variable: str) -> float | None:
    """A positive amount (USD), or None when unset."""
    text = (environ.get(variable) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 10_000_000:
        raise SettingError(f"{variable}: {text!r} is not allowed; allowed: an amount in USD, more than 0")
    return value


def _said(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
