"""Convert a qdrant-client ``models.Filter`` to a ``qdrant_edge.Filter``."""
from __future__ import annotations

from typing import Any

import qdrant_edge as qe
from qdrant_client import models

from ..errors import InputError


def to_edge_filter(flt: models.Filter | None) -> qe.Filter | None:
    """Return the qdrant-edge equivalent of ``flt`` (None stays None).

    Raises:
        InputError: the filter uses a condition the embedded engine bindings do not expose.
    """
    if flt is None:
        return None
    min_should = None
    if flt.min_should is not None:
        min_should = qe.MinShould(conditions=[_cond(c) for c in flt.min_should.conditions],
                                  min_count=flt.min_should.min_count)
    return qe.Filter(must=_conds(flt.must), should=_conds(flt.should),
                     must_not=_conds(flt.must_not), min_should=min_should)


def _conds(part: Any) -> list[Any] | None:
    if part is None:
        return None
    items = part if isinstance(part, list) else [part]
    return [_cond(c) for c in items]


def _cond(cond: Any) -> Any:
    if isinstance(cond, models.Filter):
        return to_edge_filter(cond)
    if isinstance(cond, models.FieldCondition):
        return _field(cond)
    if isinstance(cond, models.IsEmptyCondition):
        return qe.IsEmptyCondition(key=cond.is_empty.key)
    if isinstance(cond, models.IsNullCondition):
        return qe.IsNullCondition(key=cond.is_null.key)
    if isinstance(cond, models.HasIdCondition):
        return qe.HasIdCondition(point_ids=set(_ids(cond.has_id)))
    if isinstance(cond, models.HasVectorCondition):
        return qe.HasVectorCondition(vector=cond.has_vector)
    if isinstance(cond, models.NestedCondition):
        return qe.NestedCondition(key=cond.nested.key, filter=to_edge_filter(cond.nested.filter))
    raise InputError(f"filter condition {type(cond).__name__} is not supported by the embedded backend")


def _field(cond: models.FieldCondition) -> qe.FieldCondition:
    kwargs: dict[str, Any] = {}
    if cond.match is not None:
        kwargs["match"] = _match(cond.match)
    if isinstance(cond.range, models.Range):
        kwargs["range"] = qe.RangeFloat(gt=cond.range.gt, gte=cond.range.gte, lt=cond.range.lt, lte=cond.range.lte)
    elif isinstance(cond.range, models.DatetimeRange):
        r = cond.range
        kwargs["range"] = qe.RangeDateTime(**{k: _iso(getattr(r, k)) for k in ("gt", "gte", "lt", "lte")})
    if cond.values_count is not None:
        v = cond.values_count
        kwargs["values_count"] = qe.ValuesCount(lt=v.lt, gt=v.gt, lte=v.lte, gte=v.gte)
    if cond.is_empty is not None:
        kwargs["is_empty"] = cond.is_empty
    if cond.is_null is not None:
        kwargs["is_null"] = cond.is_null
    if cond.geo_bounding_box or cond.geo_radius or cond.geo_polygon:
        raise InputError("geo filter conditions are not supported by the embedded backend")
    return qe.FieldCondition(key=cond.key, **kwargs)


def _match(match: Any) -> Any:
    table = {models.MatchValue: lambda m: qe.MatchValue(m.value),
             models.MatchAny: lambda m: qe.MatchAny(list(m.any)),
             models.MatchExcept: lambda m: qe.MatchExcept(list(m.except_)),
             models.MatchText: lambda m: qe.MatchText(m.text),
             models.MatchPhrase: lambda m: qe.MatchPhrase(m.phrase)}
    for kind, make in table.items():
        if isinstance(match, kind):
            return make(match)
    raise InputError(f"match {type(match).__name__} is not supported by the embedded backend")


def _ids(ids: list[Any]) -> list[Any]:
    return [i if isinstance(i, int) else str(i) for i in ids]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
