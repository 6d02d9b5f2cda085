"""Checks that a field's `default` is a valid value of its type and within its constraints."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import uuid
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import StringConstraints, TypeAdapter, ValidationError

from .suggest import describe, suggestion

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

Number = int | float | decimal.Decimal


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(field: dict[str, object], key: str) -> decimal.Decimal | None:
    value = field.get(key)
    if not _is_number(value):
        return None
    assert isinstance(value, int | float)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return decimal.Decimal(str(value))


def _range_problem(field: dict[str, object], value: decimal.Decimal) -> str | None:
    low, high = _bound(field, "min"), _bound(field, "max")
    if low is not None and value < low:
        return f"default {value} is below min {low}"
    if high is not None and value > high:
        return f"default {value} is above max {high}"
    return None


def _as_decimal(value: object) -> decimal.Decimal | None:
    try:
        if isinstance(value, str):
            number = decimal.Decimal(value.strip())
        elif _is_number(value):
            assert isinstance(value, int | float)
            number = decimal.Decimal(str(value))
        else:
            return None
    except (decimal.InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _decimal_problem(field: dict[str, object], value: object) -> str | None:
    number = _as_decimal(value)
    if number is None:
        return f"expected a number or a numeric string for a decimal default, got {describe(value)}"
    precision, scale = field.get("precision"), field.get("scale")
    exponent = number.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if isinstance(scale, int) and not isinstance(scale, bool) and places > scale:
        return f"default {describe(value)} has {places} decimal places; scale allows {scale}"
    if isinstance(precision, int) and not isinstance(precision, bool):
        usable_scale = scale if isinstance(scale, int) and not isinstance(scale, bool) else 0
        whole_digits = number.adjusted() + 1 if number != 0 else 0
        if whole_digits > precision - usable_scale:
            return (
                f"default {describe(value)} does not fit precision {precision} and scale "
                f"{usable_scale} (at most {max(precision - usable_scale, 0)} digits before the "
                "decimal point)"
            )
    return _range_problem(field, number)


def _text_problem(field: dict[str, object], value: object) -> str | None:
    if not isinstance(value, str):
        return f"expected a string default, got {describe(value)}"
    max_length = field.get("max_length")
    if isinstance(max_length, int) and not isinstance(max_length, bool) and len(value) > max_length:
        return f"default is {len(value)} characters long; max_length is {max_length}"
    pattern = field.get("pattern")
    if isinstance(pattern, str) and _fully_matches(pattern, value) is False:
        return f"default {describe(value)} does not match the pattern {pattern!r}"
    return None


def _fully_matches(pattern: str, value: str) -> bool | None:
    """Whether `value` fully matches `pattern` (None when the pattern is invalid).

    Uses pydantic's linear-time Rust engine when it supports the pattern, so that a pattern with
    catastrophic backtracking cannot hang validation; Python's `re` otherwise (look-arounds).
    """
    try:
        adapter: TypeAdapter[str] | None = TypeAdapter(
            Annotated[str, StringConstraints(pattern=f"^(?:{pattern})$")]
        )
    except Exception:
        adapter = None
    if adapter is not None:
        try:
            adapter.validate_python(value)
        except ValidationError:
            return False
        return True
    try:
        return re.fullmatch(pattern, value) is not None
    except (re.error, RecursionError, OverflowError, ValueError):
        return None


def _datetime_problem(kind: str, value: object) -> str | None:
    if kind == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return None
        if isinstance(value, str):
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                pass
            else:
                return None
        return f"expected an ISO 8601 date (YYYY-MM-DD) as default, got {describe(value)}"
    if isinstance(value, dt.date):
        return None
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return None
    return (
        "expected an ISO 8601 date-time (e.g. 2024-01-31T12:00:00Z) as default, "
        f"got {describe(value)}"
    )


def default_problem(field_type: str, field: dict[str, object]) -> str | None:
    """Why `field['default']` is no valid default for `field_type`, or None when it is."""
    value = field.get("default")
    if field_type == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return f"expected an integer default, got {describe(value)}"
        return _range_problem(field, decimal.Decimal(value))
    if field_type == "float":
        if not _is_number(value):
            return f"expected a number as default, got {describe(value)}"
        assert isinstance(value, int | float)
        if isinstance(value, float) and not math.isfinite(value):
            return f"expected a finite number as default, got {describe(value)}"
        return _range_problem(field, decimal.Decimal(str(value)))
    if field_type == "decimal":
        return _decimal_problem(field, value)
    if field_type == "boolean":
        if not isinstance(value, bool):
            return f"expected a boolean default (true or false), got {describe(value)}"
        return None
    if field_type == "uuid":
        try:
            if not isinstance(value, str):
                raise ValueError
            uuid.UUID(value)
        except ValueError:
            return f"expected a UUID string as default, got {describe(value)}"
        return None
    if field_type in ("date", "datetime"):
        return _datetime_problem(field_type, value)
    if field_type == "email":
        if not isinstance(value, str) or _EMAIL.fullmatch(value) is None:
            return f"expected an email address as default, got {describe(value)}"
        return None
    if field_type == "url":
        return _url_problem(value)
    if field_type in ("string", "text"):
        return _text_problem(field, value)
    if field_type == "enum":
        return _enum_problem(field, value)
    if field_type == "json":
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return f"a json default must be plain JSON data, got {describe(value)}"
        return None
    return None


def _url_problem(value: object) -> str | None:
    if isinstance(value, str):
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is not None and parts.scheme in ("http", "https") and parts.netloc:
            return None
    return f"expected an http(s) URL as default, got {describe(value)}"


def _enum_problem(field: dict[str, object], value: object) -> str | None:
    values = field.get("values")
    if not isinstance(values, list):
        return None
    names = [v for v in values if isinstance(v, str)]
    if value in names:
        return None
    return (
        f"default {describe(value)} is not one of the enum values: {', '.join(names)}"
        f"{suggestion(value, names)}"
    )
