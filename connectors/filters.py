"""Filters: a simple dict or a qdrant-client ``models.Filter``, for every backend."""
from __future__ import annotations

import math
from typing import Any, Mapping

from qdrant_client import models

from ..errors import InputError

_RANGE_KEYS = frozenset({"gt", "gte", "lt", "lte"})
INT_MIN, INT_MAX = -2**63, 2**63 - 1
MAX_KEY = 1000


def build_filter(spec: Mapping[str, Any] | models.Filter | None) -> models.Filter | None:
    """Translate a simple filter dict to a Qdrant ``models.Filter`` (a Filter passes through).

    Each ``key: value`` pair must match (AND). A value is one of: a str/int/bool (equals),
    a list of str or int (any of), a dict with ``gt``/``gte``/``lt``/``lte`` (numeric range),
    or a float (equals, as a closed range). Keys may be dotted paths into nested payload.
    Ints are 64-bit signed (the engine's), numbers finite.

    Raises:
        InputError: a key or value the engine cannot take (the message names the key and the rule).
    """
    if spec is None or isinstance(spec, models.Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise InputError(f"filter must be a dict or a qdrant_client models.Filter, got {type(spec).__name__}")
    if not spec:
        return None
    return models.Filter(must=[_condition(_key(key), value) for key, value in spec.items()])


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        raise InputError(f"filter key {str(key)[:50]!r}: a key must be a non-empty str of at most {MAX_KEY} characters")
    return key


def _condition(key: str, value: Any) -> models.FieldCondition:
    if isinstance(value, (bool, str)):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    if isinstance(value, int):
        return models.FieldCondition(key=key, match=models.MatchValue(value=_int(key, value)))
    if isinstance(value, float):
        number = _number(key, value, "the value")
        return models.FieldCondition(key=key, range=models.Range(gte=number, lte=number))
    if isinstance(value, (list, tuple, set, frozenset)):
        values = list(value)
        if not values or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
            raise InputError(f"filter {key!r}: a list must hold at least one str or int, got {_short(value)}")
        kinds = {type(v) for v in values}
        if len(kinds) > 1:
            raise InputError(f"filter {key!r}: a list holds either str or int values, not both")
        return models.FieldCondition(key=key, match=models.MatchAny(any=[_int(key, v) if isinstance(v, int) else v
                                                                         for v in values]))
    if isinstance(value, Mapping):
        unknown = set(value) - _RANGE_KEYS
        if unknown or not value:
            raise InputError(f"filter {key!r}: a range takes keys {sorted(_RANGE_KEYS)}, got "
                             f"{sorted(map(str, value))[:8]}")
        bounds = {k: _number(key, v, f"its {k!r} bound") for k, v in value.items()}
        return models.FieldCondition(key=key, range=models.Range(**bounds))
    raise InputError(f"filter {key!r}: unsupported value {_short(value)}; use a str/int/bool, a list, "
                     f"or a dict like {{'gte': 1, 'lte': 5}}")


def _int(key: str, value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise InputError(f"filter {key!r}: an int must be within -2**63..2**63-1 (64-bit), got {_short(value)}")
    return value


def _number(key: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"filter {key!r}: {what} must be a number, got {_short(value)}")
    if isinstance(value, int):
        _int(key, value)
    if not math.isfinite(value):
        raise InputError(f"filter {key!r}: {what} must be a finite number, got {value}")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
