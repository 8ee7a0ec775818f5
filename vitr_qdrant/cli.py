"""The ``vitr`` command: index, search, info, and the train / eval / bench / demo tools."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Sequence

from .cli_index import add_index_parser, run_index
from .cli_tools import TOOLS, add_tool_parsers
from .encoders.modes import MODES
from .settings import Settings
from .errors import VitrError

logger = logging.getLogger(__name__)


def add_store_args(p: argparse.ArgumentParser, model: bool = True, required: bool = True) -> None:
    """Options naming a collection, its store and (optionally) the model."""
    g = p.add_argument_group("collection")
    g.add_argument("-c", "--collection", required=required,
                   help="collection name" if required else "collection name (default: list the collections)")
    g.add_argument("--path", help="embedded store directory (default: $VITR_QDRANT_HOME or the user data dir)")
    g.add_argument("--url", help="Qdrant server or cluster URL (e.g. http://host:6333)")
    g.add_argument("--api-key", default=os.environ.get("QDRANT_API_KEY"), help="server API key ($QDRANT_API_KEY)")
    g.add_argument("--backend", choices=("edge", "qdrant-local", "qdrant-remote"), help="storage backend")
    if model:
        g.add_argument("--model", help="model name or directory (default: the bundled model)")
        g.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")


def open_collection(args: argparse.Namespace, storage: dict[str, Any] | None = None, **settings: Any):
    """The :class:`VitrCollection` named by ``args`` (see :func:`add_store_args`); ``storage``:
    the region storage options of a collection created now."""
    from .collection import VitrCollection
    from .encoders import load_model

    model = load_model(args.model, device=args.device)
    return VitrCollection(args.collection, path=args.path, url=args.url, api_key=args.api_key, model=model,
                          backend=args.backend, settings=Settings.create(**settings), **(storage or {}))


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vitr`` with every subcommand."""
    p = argparse.ArgumentParser(prog="vitr", description="Relation-aware multimodal search on Qdrant.")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add_index_parser(sub, add_store_args)

    s = sub.add_parser("search", help="search a collection by text (or by image with --image)")
    s.add_argument("query", nargs="?", help="query text")
    s.add_argument("--image", help="query image (path or URL): similar images, or texts with --texts")
    s.add_argument("--texts", action="store_true", help="with --image: search the texts of add_texts")
    s.add_argument("-k", "--limit", type=int, default=10)
    s.add_argument("--mode", choices=MODES, help="default: vitr, or global for a model without a trained head")
    s.add_argument("--filter", type=json.loads, help='payload filter as JSON, e.g. \'{"kind": "dog"}\'')
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_store_args(s)

    i = sub.add_parser("info", help="collection statistics and model fingerprint (no model needed)")
    add_store_args(i, model=False, required=False)
    add_tool_parsers(sub)
    return p


def run_search(args: argparse.Namespace) -> int:
    if not args.query and not args.image:
        raise SystemExit("vitr search: give a query text or --image PATH")
    with open_collection(args) as col:
        if args.image and args.texts:
            hits = col.search_texts(args.image, limit=args.limit, filter=args.filter, mode=args.mode)
        elif args.image:
            hits = col.search_by_image(args.image, limit=args.limit, filter=args.filter)
        else:
            hits = col.search(args.query, limit=args.limit, filter=args.filter, mode=args.mode)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2, default=str))
        return 0
    for rank, h in enumerate(hits, 1):
        where = h.text or h.uri or "-"
        print(f"{rank:>3}  {h.score:9.4f}  {str(h.id):<36}  {where}")
        if h.grounding:
            print("       " + ", ".join(f"{g.word}@({', '.join(f'{v:.0f}' for v in g.box)})" for g in h.grounding))
    if not hits:
        print("no hits")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from .store_info import store_info

    print(json.dumps(store_info(args.collection, path=args.path, url=args.url, api_key=args.api_key,
                                backend=args.backend), indent=2, default=str))
    return 0


COMMANDS = {"search": run_search, "info": run_info, "index": run_index}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vitr`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(argv) and argv[0] in ("-v", "--verbose")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rest = argv[1:] if verbose else argv
    if rest and rest[0] in TOOLS:   # these parse their own arguments
        return int(TOOLS[rest[0]](rest[1:]) or 0)
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except (VitrError, ValueError, OSError) as exc:
        logger.debug("vitr %s failed", args.command, exc_info=True)
        print(f"vitr {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
