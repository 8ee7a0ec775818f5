"""Filters: a simple dict or a qdrant-client ``models.Filter``, for every backend."""
from __future__ import annotations

from typing import Any, Mapping

from qdrant_client import models

from ..errors import InputError

_RANGE_KEYS = frozenset({"gt", "gte", "lt", "lte"})


def build_filter(spec: Mapping[str, Any] | models.Filter | None) -> models.Filter | None:
    """Translate a simple filter dict to a Qdrant ``models.Filter`` (a Filter passes through).

    Each ``key: value`` pair must match (AND). A value is one of: a str/int/bool (equals),
    a list of str or int (any of), a dict with ``gt``/``gte``/``lt``/``lte`` (numeric range),
    or a float (equals, as a closed range). Keys may be dotted paths into nested payload.

    Raises:
        InputError: a value has an unsupported type (the message names the key).
    """
    if spec is None or isinstance(spec, models.Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise InputError(f"filter must be a dict or a qdrant_client models.Filter, got {type(spec).__name__}")
    if not spec:
        return None
    return models.Filter(must=[_condition(str(key), value) for key, value in spec.items()])


def _condition(key: str, value: Any) -> models.FieldCondition:
    if isinstance(value, (bool, str, int)):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    if isinstance(value, float):
        return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
    if isinstance(value, (list, tuple, set, frozenset)):
        values = list(value)
        if not values or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
            raise InputError(f"filter {key!r}: a list must hold at least one str or int, got {value!r}")
        return models.FieldCondition(key=key, match=models.MatchAny(any=values))
    if isinstance(value, Mapping):
        unknown = set(value) - _RANGE_KEYS
        if unknown or not value:
            raise InputError(f"filter {key!r}: a range takes keys {sorted(_RANGE_KEYS)}, got {sorted(value)}")
        return models.FieldCondition(key=key, range=models.Range(**{k: float(v) for k, v in value.items()}))
    raise InputError(f"filter {key!r}: unsupported value {value!r}; use a str/int/bool, a list, "
                     f"or a dict like {{'gte': 1, 'lte': 5}}")
