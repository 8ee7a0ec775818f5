"""The FastAPI app: search by text, by image and for texts, collection info, health and the page."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Optional, get_args

from fastapi import APIRouter, Depends, FastAPI, File, Form, Response, UploadFile

from .._version import __version__
from ..params import CANDIDATES, PREFETCH, SearchParams
from ..collection import VitrCollection
from .access import AccessLog
from .guards import BodyLimit, BrowserGuard, Secret, default_hosts, install_error_handlers, key_checker
from .items import router as items_router
from .._json import json_object
from .schemas import Mode, SearchRequest, SearchResponse, StageSizes
from .state import DEFAULT_MAX_BODY, Service, get_service

router = APIRouter()
PAGE = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
        "/app.css": ("app.css", "text/css; charset=utf-8"), "/docs": ("docs.html", "text/html; charset=utf-8"),
        "/docs.js": ("docs.js", "text/javascript; charset=utf-8")}
# The page loads nothing from elsewhere: scripts, styles, requests and images stay on this origin
# (thumbnails come from /items/ID/image; an http(s) uri of a hit is never loaded by the viewer).
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
               "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def create_app(collection: VitrCollection, *, api_key: str | Secret | None = None,
               uploads: str | os.PathLike[str] | None = None, allow_delete: bool = False,
               allow_updates: bool = False, max_body_bytes: int = DEFAULT_MAX_BODY,
               allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """An HTTP service (JSON API, its docs at ``/docs``, a search page at ``/``) for ``collection``.

    Args:
        collection: An open :class:`~vitr_qdrant.VitrCollection` (closing it stays the caller's job).
        api_key: When set, every data endpoint needs it in the ``X-API-Key`` header (compared in
            constant time); ``/health``, ``/docs`` and the page itself stay open. An empty key, or
            one no client can send (blank, spaces around it, not printable ASCII), is an
            :class:`~vitr_qdrant.InputError`, never "no key".
        uploads: Directory for uploaded images; turns on ``POST /items``.
        allow_delete: Turns on ``DELETE /items/{id}``.
        allow_updates: Lets an upload with metadata rewrite an item stored already (off: it is
            reported as skipped).
        max_body_bytes: Requests with a larger body (uploads included) get 413.
        allowed_hosts: The ``Host`` names the service answers (others get 421, against DNS
            rebinding); default: ``localhost``, ``127.0.0.1``, ``::1``; ``"*"`` allows any.

    Cross-site requests that change or query (anything but GET/HEAD/OPTIONS: an ``Origin`` that
    is not the service's own, or ``Sec-Fetch-Site: cross-site``) are refused with 403.
    """
    secret = api_key if api_key is None or isinstance(api_key, Secret) else Secret(api_key)
    del api_key   # from here on only the Secret, whose repr hides it
    service = Service(collection, None if uploads is None else Path(uploads), allow_delete, max_body_bytes,
                      allow_updates=allow_updates)
    app = FastAPI(title=f"vitr-qdrant: {collection.name}", version=__version__, docs_url=None, redoc_url=None,
                  description="Relation-aware image search on one collection (vitr serve).")
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(BrowserGuard, allowed_hosts=default_hosts() if allowed_hosts is None else list(allowed_hosts))
    app.add_middleware(AccessLog)
    guarded = [Depends(key_checker(secret))]
    app.include_router(router, dependencies=guarded)
    app.include_router(items_router, dependencies=guarded)
    app.include_router(page_router())
    return app


@router.post("/search", response_model=SearchResponse, summary="images for a text")
async def search(req: SearchRequest, service: Service = Depends(get_service)) -> dict[str, Any]:
    col = service.face()
    query = await col.encode_query(req.text)   # encoded once: the search and its unknown words
    hits = await col.search(query, params=req.params())
    return {"hits": [h.to_dict() for h in hits], "unknown_words": query.unknown_words}


def stage_form(limit: int = Form(10), offset: int = Form(0),
               filter: Optional[str] = Form(None, description="a JSON object"),
               prefetch: Optional[int] = Form(PREFETCH), candidates: int = Form(CANDIDATES),
               score_threshold: Optional[float] = Form(None)) -> StageSizes:
    """The search parameters of a multipart search (its filter as a JSON string)."""
    return StageSizes(limit=limit, offset=offset, filter=json_object(filter, "filter"), prefetch=prefetch,
                      candidates=candidates, score_threshold=score_threshold)


@router.post("/search/image", response_model=SearchResponse, summary="images similar to an uploaded image")
async def search_image(file: UploadFile = File(...), stages: StageSizes = Depends(stage_form),
                       service: Service = Depends(get_service)) -> dict[str, Any]:
    data = await file.read()
    hits = await service.face().search_by_image(data, params=stages.params())
    return {"hits": [h.to_dict() for h in hits], "unknown_words": []}


@router.post("/search/texts", response_model=SearchResponse, summary="stored texts that describe an uploaded image")
async def search_texts(file: UploadFile = File(...), mode: Optional[Mode] = Form(None),
                       stages: StageSizes = Depends(stage_form),
                       service: Service = Depends(get_service)) -> dict[str, Any]:
    data = await file.read()
    hits = await service.face().search_texts(data, params=SearchParams.create(stages.params(), mode=mode))
    return {"hits": [h.to_dict() for h in hits], "unknown_words": []}


@router.get("/info", summary="the collection, its model and what this service allows")
def info(service: Service = Depends(get_service)) -> dict[str, Any]:
    with service.lock:
        about = service.collection.info()
    return {"name": about["name"], "backend": about["backend"], "images": about["images"], "texts": about["texts"],
            "model": about["model"], "modes": list(get_args(Mode)), "add": service.uploads is not None,
            "delete": service.allow_delete, "update": service.allow_updates, "max_body_bytes": service.max_body_bytes}


def page_router() -> APIRouter:
    """``/health`` and the search page (its three files, read once; no path reaches the file system)."""
    pages, files = APIRouter(), resources.files(__package__) / "page"
    for route, (name, media) in PAGE.items():
        pages.add_api_route(route, _page_file((files / name).read_bytes(), media), methods=["GET"],
                            include_in_schema=False)

    @pages.get("/health", summary="liveness: 200 while the service runs")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return pages


def _page_file(body: bytes, media: str) -> Any:
    def serve() -> Response:
        return Response(body, media_type=media, headers={"Content-Security-Policy": PAGE_POLICY,
                                                         "Cache-Control": "no-cache"})

    return serve
