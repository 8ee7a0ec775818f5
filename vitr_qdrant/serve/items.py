"""Stored items: get by id, the image as a thumbnail, and (when the service allows) add and delete.

Images are read only from a record's own stored ``uri``: no part of a request names a file.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Response, UploadFile
from PIL import Image

from ..encoders.images import load_image
from ..fetch import url_scheme
from ..results import Record
from .._json import json_object
from .schemas import AddResponse, RecordOut
from .state import Service, get_service

router = APIRouter()
UPLOAD_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


def find_record(service: Service, item_id: str) -> Record:
    """The record whose id reads ``item_id`` (an int id, a str id or a point UUID), else 404."""
    ids: list[Any] = [item_id]
    if item_id.lstrip("-").isdigit():
        ids.append(int(item_id))
    with service.lock:
        records = service.collection.get(ids)
    for record in records:
        if str(record.id) == item_id:
            return record
    raise HTTPException(404, f"no item {item_id!r} in this collection")


@router.get("/items/{item_id}", response_model=RecordOut, summary="a stored item's id and payload")
def get_item(item_id: str, service: Service = Depends(get_service)) -> dict[str, Any]:
    record = find_record(service, item_id)
    return {"id": record.id, "payload": record.payload}


@router.get("/items/{item_id}/image", summary="a stored image, scaled to fit size x size (JPEG)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def item_image(item_id: str, size: int = Query(256, ge=16, le=1024), service: Service = Depends(get_service)
               ) -> Response:
    uri = find_record(service, item_id).uri
    if not uri or url_scheme(uri):
        raise HTTPException(404, f"item {item_id!r} has no stored image file" + (f" (its uri is {uri})" if uri else ""))
    path = Path(uri)
    if not path.is_file():
        raise HTTPException(404, f"the image file of item {item_id!r} is no longer there")
    if path.stat().st_size > service.collection.settings.max_bytes:
        raise HTTPException(413, f"the image file of item {item_id!r} is over the collection's max_bytes")
    image = load_image(path, service.collection.settings.max_pixels, fit=size)   # decoded about as small as shown
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return Response(buf.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.post("/items", response_model=AddResponse, summary="add uploaded images (vitr serve --uploads DIR)")
def add_items(files: list[UploadFile] = File(...), metadata: Optional[str] = Form(None, description="a JSON object "
              "stored with every image"), service: Service = Depends(get_service)) -> dict[str, Any]:
    if service.uploads is None:
        raise HTTPException(403, "adding images is off: start the service with vitr serve --uploads DIR")
    meta = json_object(metadata, "metadata")
    names: dict[str, str] = {}   # saved path -> the upload's own name (reports never show our paths)
    skipped, failed = [], []
    for upload in files:
        name, data = upload.filename or "upload", upload.file.read()
        fmt = image_format(data)
        if fmt is None:
            failed.append({"item": name, "reason": f"not an image in a format this service keeps "
                                                   f"({', '.join(UPLOAD_FORMATS)})"})
            continue
        path = str(save_upload(service.uploads, data, fmt))
        if path in names:
            skipped.append({"item": name, "reason": f"duplicate of {names[path]} in this call"})
        else:
            names[path] = name
    with service.lock:
        report = service.collection.add_images([Path(p) for p in names], metadata=meta, progress=False)

    def named(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"item": names.get(k, k), "reason": r} for k, r in pairs]

    return {"added": report.added, "skipped": skipped + named(report.skipped_items),
            "failed": failed + named(report.failed), "ids": report.ids}


def image_format(data: bytes) -> str | None:
    """The upload's format if it is an image of :data:`UPLOAD_FORMATS` (read from its header only)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format if img.format in UPLOAD_FORMATS else None
    except Exception:   # PIL raises many kinds for non-images
        return None


def save_upload(folder: Path, data: bytes, fmt: str) -> Path:
    """Keep ``data`` as ``folder/<sha256>.<ext>``: the name comes from the content, never the request."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()}.{UPLOAD_FORMATS[fmt]}"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path


@router.delete("/items/{item_id}", summary="delete a stored item (vitr serve --allow-delete)")
def delete_item(item_id: str, service: Service = Depends(get_service)) -> dict[str, Any]:
    if not service.allow_delete:
        raise HTTPException(403, "deleting is off: start the service with vitr serve --allow-delete")
    record = find_record(service, item_id)
    with service.lock:
        service.collection.delete(record.id)
    return {"deleted": record.id}
