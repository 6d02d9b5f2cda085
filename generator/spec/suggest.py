"""Wording of messages: "did you mean ...?" suggestions (difflib) and value descriptions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

_MAX_SHOWN = 40


def did_you_mean(word: object, options: Iterable[str]) -> str | None:
    """The option closest to `word` (case-insensitively), or None when nothing is close enough."""
    if not isinstance(word, str) or not word:
        return None
    choices = [option for option in options if option != word]
    by_lower: dict[str, str] = {}
    for option in choices:
        by_lower.setdefault(option.lower(), option)
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


def suggestion(word: object, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for a near miss, else ""."""
    best = did_you_mean(word, options)
    return f"; did you mean '{best}'?" if best is not None else ""


def allowed(options: Iterable[str]) -> str:
    """A comma-separated list of the allowed options (or "none")."""
    shown = list(dict.fromkeys(options))
    return ", ".join(shown) if shown else "none"


def describe(value: object) -> str:
    """How a YAML value is named in a message: 'text', 12, true, null, a list, a mapping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 3] + "..."
        return repr(text)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bytes | bytearray):
        return "binary data"
    if isinstance(value, AbstractSet):
        return "a set"
    return f"a value of type {type(value).__name__}"
