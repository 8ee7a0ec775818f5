"""The CLI's collection options, and the checks that run before a command opens (or creates) anything."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..settings import Settings

EXIT_STATUS = ("exit status: 0 done (every item added or skipped), 1 failed (some items, or the "
               "operation: an unreachable server, a model that cannot load), 2 usage error (a missing "
               "collection, path or input, a bad value: nothing was created)")


class UsageError(Exception):
    """A mistake on the command line (a missing collection, path or input): exit status 2, and
    nothing was created or written."""


def server_key(args: argparse.Namespace) -> str | None:
    """``--api-key``, else ``$QDRANT_API_KEY`` when a server is named (never for a local store)."""
    return args.api_key or (os.environ.get("QDRANT_API_KEY") if args.url else None)


def add_store_args(p: argparse.ArgumentParser, model: bool = True, required: bool = True) -> None:
    """Options naming a collection, its store and (optionally) the model."""
    g = p.add_argument_group("collection")
    g.add_argument("-c", "--collection", required=required,
                   help="collection name" if required else "collection name (default: list the collections)")
    g.add_argument("--path", help="embedded store directory (default: $VITR_QDRANT_HOME or the user data dir)")
    g.add_argument("--url", help="Qdrant server or cluster URL (e.g. http://host:6333)")
    g.add_argument("--api-key", help="the Qdrant server's API key (default with --url: $QDRANT_API_KEY)")
    g.add_argument("--backend", choices=("edge", "qdrant-local", "qdrant-remote"),
                   help="storage backend (default: chosen by --path / --url)")
    if model:
        g.add_argument("--model", help="model name or directory (default: the model the collection was built "
                       "with, else the bundled default)")
        g.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")


def store_path(args: argparse.Namespace) -> Path | None:
    """The embedded store directory that ``args`` name (None for a server), as VitrCollection resolves it."""
    if args.url is not None or args.backend == "qdrant-remote":
        return None
    if args.path is not None:
        return Path(args.path).expanduser()
    from ..connectors import default_store_path

    return default_store_path(args.backend)


def list_store(args: argparse.Namespace) -> dict[str, Any]:
    """What :func:`~vitr_qdrant.store_info.store_info` says about the store (no collection
    named); a store directory that does not exist is a :class:`UsageError`, not created."""
    from ..store_info import store_info

    path = store_path(args)
    if path is not None and not path.is_dir():
        raise UsageError(f"no store at {path} (nothing was created); check --path, or add images "
                         f"first with `vitr index`")
    # One attempt: an unreachable server is reported at once, not after a round of retries.
    options = {"retries": 1} if path is None else {}
    return store_info(None, path=path, url=args.url, api_key=server_key(args), backend=args.backend, **options)


def require_collection(args: argparse.Namespace, texts: bool = False) -> None:
    """A :class:`UsageError` listing the store's collections unless ``args.collection`` is one
    of its image collections (or, with ``texts``, of its text collections)."""
    found = list_store(args)
    if args.collection not in found["collections"] + (found["text_collections"] if texts else []):
        names = ", ".join(found["collections"]) or "none"
        raise UsageError(f"no collection {args.collection!r} at {found['location']} (nothing was "
                         f"created); collections there: {names}")


def recorded_model(args: argparse.Namespace) -> str | None:
    """Without ``--model``: the model the collection was built with (see ``VitrCollection(model=None)``),
    or None (the bundled default) for a collection not created yet."""
    from ..collection import recorded_model as model_of
    from ..errors import CollectionNotFoundError
    from ..store_info import store_info

    if store_path(args) is not None and not store_path(args).is_dir():
        return None
    try:
        stored = store_info(args.collection, path=args.path, url=args.url, api_key=server_key(args),
                            backend=args.backend)["stored"]
    except CollectionNotFoundError:
        return None
    return model_of(args.collection, stored)


def open_collection(args: argparse.Namespace, storage: dict[str, Any] | None = None,
                    index_keys: list[str] | None = None, **settings: Any):
    """The :class:`VitrCollection` named by ``args`` (see :func:`add_store_args`); ``storage``:
    the region storage options of a collection created now; ``index_keys``: payload keys to index."""
    from ..collection import VitrCollection
    from ..connectors import CollectionSpec
    from ..encoders import load_model

    CollectionSpec(args.collection, 1, 1, **(storage or {}))   # a bad name or option: before the model loads
    model = load_model(args.model if args.model is not None else recorded_model(args), device=args.device)
    return VitrCollection(args.collection, path=args.path, url=args.url, api_key=server_key(args), model=model,
                          backend=args.backend, settings=Settings.create(**settings), index_keys=index_keys,
                          **(storage or {}))
