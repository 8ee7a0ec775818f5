"""Stored items: get by id, the image as a thumbnail, and (when the service allows) add and delete.

Images are read only from a record's own stored ``uri``, and served only while the file still
has the stored sha256: no part of a request names a file.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Response, UploadFile
from PIL import Image, UnidentifiedImageError

from ..connectors import point_id
from ..encoders.images import load_image
from ..errors import ImageLoadError
from ..sources.fetch import url_scheme
from ..sources.inputs import pixel_sha256
from ..results import Record
from .._json import json_object
from .schemas import AddResponse, RecordOut
from .state import Service, get_service

router = APIRouter()
UPLOAD_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
IdType = Literal["auto", "int", "str"]
ID_TYPE = Query("auto", description="int: the int id; str: the str id (or point UUID); auto: whichever is "
                "stored (409 when both an int and a str id read like this)")
_INT_ID = re.compile(r"[0-9]{1,20}")


def find_record(service: Service, item_id: str, id_type: IdType = "auto") -> Record:
    """The record whose id reads ``item_id`` (an int id, a str id or a point UUID), else 404."""
    ids: list[Any] = []
    if id_type in ("auto", "str"):
        ids.append(item_id)
    if id_type in ("auto", "int"):
        if _INT_ID.fullmatch(item_id) and int(item_id) < 2**64:
            ids.append(int(item_id))
        elif id_type == "int":
            raise HTTPException(400, f"id_type=int: {item_id[:40]!r} is not an int id (0..2**64-1)")
    with service.lock:
        records = [r for r in service.collection.get(ids) if str(r.id) == item_id]
    if len(records) > 1:
        raise HTTPException(409, f"both the int id {item_id} and the str id {item_id!r} are stored: "
                                 f"add ?id_type=int or ?id_type=str")
    if not records:
        raise HTTPException(404, f"no item {item_id[:100]!r} in this collection")
    return records[0]


@router.get("/items/{item_id}", response_model=RecordOut, summary="a stored item's id and payload")
def get_item(item_id: str, id_type: IdType = ID_TYPE, service: Service = Depends(get_service)) -> dict[str, Any]:
    record = find_record(service, item_id, id_type)
    return {"id": record.id, "payload": record.payload}


@router.get("/items/{item_id}/image", summary="a stored image, scaled to fit size x size (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def item_image(item_id: str, size: int = Query(256, ge=16, le=1024), id_type: IdType = ID_TYPE,
               service: Service = Depends(get_service)) -> Response:
    record = find_record(service, item_id, id_type)
    data = stored_file(service, record)
    settings = service.collection.settings
    image = load_image(data, settings.max_pixels, fit=size)   # decoded about as small as shown
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return Response(buf.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


def stored_file(service: Service, record: Record) -> bytes:
    """The bytes of a record's image file, while they are still what was indexed (its ``sha256``:
    of the file's bytes, or of the pixels of an image added as a ``PIL.Image``); else 404 or 409."""
    uri, shown = record.uri, f"item {str(record.id)[:100]!r}"
    if not uri or url_scheme(uri):
        raise HTTPException(404, f"{shown} has no stored image file" + (" (its uri is a URL)" if uri else ""))
    path = Path(uri)
    if not path.is_absolute() or not path.is_file():
        raise HTTPException(404, f"the image file of {shown} is no longer there")
    settings = service.collection.settings
    if path.stat().st_size > settings.max_bytes:
        raise HTTPException(413, f"the image file of {shown} is over the collection's max_bytes")
    data = path.read_bytes()
    stored = record.payload.get("sha256")
    if stored and hashlib.sha256(data).hexdigest() != stored and not _same_pixels(data, stored, settings.max_pixels):
        raise HTTPException(409, f"the image file of {shown} changed since it was indexed (its sha256 differs): "
                                 f"add it again to index the new file")
    return data


def _same_pixels(data: bytes, stored: str, max_pixels: int) -> bool:
    try:
        return pixel_sha256(load_image(data, max_pixels)) == stored
    except ImageLoadError:
        return False


@router.post("/items", response_model=AddResponse, summary="add uploaded images (vitr serve --uploads DIR)")
def add_items(files: list[UploadFile] = File(...), metadata: Optional[str] = Form(None, description="a JSON object "
              "stored with every image"), service: Service = Depends(get_service)) -> dict[str, Any]:
    if service.uploads is None:
        raise HTTPException(403, "adding images is off: start the service with vitr serve --uploads DIR")
    meta = json_object(metadata, "metadata")
    names: dict[str, str] = {}   # saved path -> the upload's own name (reports never show our paths)
    created: set[str] = set()    # files this call wrote: removed again when their add fails
    skipped, failed = [], []
    for upload in files:
        name, data = (upload.filename or "upload")[:200], upload.file.read()
        fmt, reason = image_format(data)
        if fmt is None:
            failed.append({"item": name, "reason": reason})
            continue
        stored = None if service.allow_updates else _stored_as(service, data)
        if stored is not None:
            skipped.append({"item": name, "reason": f"stored already as item {stored}; this service does not "
                                                    f"update items (vitr serve --allow-updates)"})
            continue
        path, new = save_upload(service.uploads, data, fmt)
        if path in names:
            skipped.append({"item": name, "reason": f"duplicate of {names[path]} in this call"})
            continue
        names[path] = name
        if new:
            created.add(path)
    try:
        with service.lock:
            report = service.collection.add_images([Path(p) for p in names], metadata=meta, progress=False)
    except BaseException:
        _remove(created)
        raise
    _remove(created & {k for k, _ in report.failed})

    def named(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"item": names.get(k, k), "reason": r} for k, r in pairs]

    return {"added": report.added, "skipped": skipped + named(report.skipped_items),
            "failed": failed + named(report.failed), "ids": report.ids}


def _stored_as(service: Service, data: bytes) -> Any:
    """The id of the item stored already with these bytes, or None."""
    pid = point_id(sha256=hashlib.sha256(data).hexdigest())
    with service.lock:
        records = service.collection.get(pid)
    return records[0].id if records else None


def _remove(paths: set[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def image_format(data: bytes) -> tuple[str | None, str]:
    """(the upload's format, "") if it is an image of :data:`UPLOAD_FORMATS` (read from its header
    only), else (None, the reason)."""
    kept = ", ".join(UPLOAD_FORMATS)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format in UPLOAD_FORMATS:
                return img.format, ""
            return None, f"a {img.format} image; this service keeps {kept}"
    except Image.DecompressionBombError as exc:
        return None, f"refused as a decompression bomb: {exc}"
    except UnidentifiedImageError:
        return None, f"not an image in a format this service keeps ({kept})"
    except Exception as exc:   # PIL raises many kinds for damaged headers
        return None, f"not a readable image: {type(exc).__name__}: {str(exc)[:200]}"


def save_upload(folder: Path, data: bytes, fmt: str) -> tuple[str, bool]:
    """Keep ``data`` as ``folder/<sha256>.<ext>`` (the name comes from the content, never the
    request); returns the path and whether this call wrote it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder.resolve() / f"{hashlib.sha256(data).hexdigest()}.{UPLOAD_FORMATS[fmt]}"
    if path.exists():
        return str(path), False
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path), True


@router.delete("/items/{item_id}", summary="delete a stored item (vitr serve --allow-delete)")
def delete_item(item_id: str, id_type: IdType = ID_TYPE, service: Service = Depends(get_service)) -> dict[str, Any]:
    if not service.allow_delete:
        raise HTTPException(403, "deleting is off: start the service with vitr serve --allow-delete")
    record = find_record(service, item_id, id_type)
    with service.lock:
        service.collection.delete([record.id])
    return {"deleted": record.id}
