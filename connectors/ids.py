"""Point ids: the user's id when given, else a content hash of the image."""
from __future__ import annotations

import uuid
from typing import Union

from ..errors import InputError

PointId = Union[int, str]
"""A Qdrant point id as stored: an unsigned 64-bit int or a canonical UUID string."""

ID_NAMESPACE = uuid.UUID("6f1c3c1e-0b7a-5d43-9a52-3e1f6a0c9d21")
"""Fixed namespace of the UUIDv5 ids. Changing it would orphan every stored point."""

_MAX_INT_ID = 2**64 - 1


def user_key(user_id: int | str | uuid.UUID) -> int | str:
    """The caller's id as it is stored (``external_id``) and shown: an int, or a str; a
    ``uuid.UUID`` is the same id as its canonical string.

    Raises:
        InputError: not an int (0 .. 2**64-1) or a non-empty str.
    """
    if isinstance(user_id, uuid.UUID):
        return str(user_id)
    if isinstance(user_id, bool) or not isinstance(user_id, (int, str)):
        raise InputError(f"an id must be an int or a str, got {type(user_id).__name__} ({user_id!r})")
    if isinstance(user_id, int) and not 0 <= user_id <= _MAX_INT_ID:
        raise InputError(f"an int id must be in 0..2**64-1, got {user_id}")
    if user_id == "":
        raise InputError("an id must not be an empty string")
    return user_id


def point_id(user_id: int | str | uuid.UUID | None = None, sha256: str | None = None) -> PointId:
    """Return the Qdrant point id for an item.

    Args:
        user_id: The caller's id (see :func:`user_key`). An int is used as is (0 .. 2**64-1);
            a str (a ``uuid.UUID`` as its canonical string) is mapped to a UUIDv5 in a fixed
            namespace, so the same string always gives the same point.
        sha256: Hex digest of the image bytes, used when ``user_id`` is None, so re-adding
            the same image overwrites the same point instead of duplicating it.

    Raises:
        InputError: neither is given, the id is not an int or a non-empty str, or the digest is not hex.
    """
    if user_id is not None:
        key = user_key(user_id)
        return key if isinstance(key, int) else str(uuid.uuid5(ID_NAMESPACE, "id:" + key))
    if sha256 is None:
        raise InputError("give either a user id or the sha256 of the image to derive a point id")
    digest = sha256.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InputError(f"sha256 must be a 64-character hex digest, got {sha256!r}")
    return str(uuid.uuid5(ID_NAMESPACE, "sha256:" + digest))


def normalize_id(raw: object) -> PointId:
    """Return a stored id as the connectors report it: int, or a lower-case UUID string."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    return str(uuid.UUID(str(raw)))
