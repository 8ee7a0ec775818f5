"""A JSON object given as text (a ``--filter`` option, a form field of the service)."""
from __future__ import annotations

import json
from typing import Any

from .errors import InputError


def json_object(text: str | None, what: str) -> dict[str, Any] | None:
    """The JSON object in ``text`` (empty: None); anything else is an InputError naming ``what``."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not JSON ({exc.msg} at character {exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise InputError(f'{what} must be a JSON object, e.g. \'{{"kind": "dog"}}\', got {text!r}')
    return value
