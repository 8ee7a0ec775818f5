"""The ``vitr`` command: index, search, info, serve, and the train / eval / bench / demo tools."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from typing import Any, Callable, Sequence

from .index import add_index_parser, run_index
from .serve import add_serve_parser, run_serve
from .store import (EXIT_STATUS, UsageError, add_store_args, list_store, open_collection, require_collection,
                    server_key, store_path)
from .tools import TOOLS, add_tool_parsers
from .._json import json_object
from ..encoders.modes import MODES
from ..errors import InputError
from ..params import CANDIDATES, PREFETCH

logger = logging.getLogger(__name__)
GLOBAL_FLAGS = {"-v": "verbose", "--verbose": "verbose", "--debug": "debug"}


def filter_option(text: str) -> dict[str, Any] | None:
    """``--filter``: a JSON object."""
    try:
        return json_object(text, "--filter")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def prefetch_option(text: str) -> int | None:
    """``--prefetch``: a stage 1 size, or ``all`` (no global stage: MaxSim over every image)."""
    return None if text == "all" else int(text)


def add_search_args(p: argparse.ArgumentParser) -> None:
    """Options every search takes: limit, mode, filter and the stage sizes."""
    p.add_argument("-k", "--limit", type=int, default=10, help="number of hits (default: 10)")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="vitr: all three stages (default; global for a model without a trained "
                   "head); late: MaxSim of words over regions; global: the CLIP baseline of the "
                   "same model")
    p.add_argument("--filter", type=filter_option, help='payload filter as JSON, e.g. \'{"kind": "dog"}\'')
    p.add_argument("--prefetch", type=prefetch_option, default=PREFETCH,
                   help="stage 1 size: the top N by the model's first-stage vector where the collection has "
                   "them, else by the global vector; 'all': no stage 1, MaxSim over every "
                   "image (exact, slower on large collections)")
    p.add_argument("--candidates", type=int, default=CANDIDATES, help="stage 2 size: candidates reranked in vitr mode")
    p.add_argument("--offset", type=int, default=0, help="hits to skip first, for paging (default: 0)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="leave out hits scoring below this (in the mode's scale; see the probability column)")


def search_params(args: argparse.Namespace) -> Any:
    """The :class:`~vitr_qdrant.params.SearchParams` of a search command line (checked now,
    before any store opens or model loads)."""
    from ..params import SearchParams

    return SearchParams(limit=args.limit, offset=args.offset, filter=args.filter, mode=getattr(args, "mode", None),
                        prefetch=args.prefetch, candidates=args.candidates, score_threshold=args.score_threshold)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``vitr`` with every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO level")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print the traceback of an error (and log at INFO level)")
    p = argparse.ArgumentParser(prog="vitr", description="Relation-aware multimodal search on Qdrant.",
                                epilog=EXIT_STATUS, parents=[common])
    p.set_defaults(verbose=False, debug=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add_index_parser(sub, common)

    s = sub.add_parser("search", help="search a collection by text (or by image with --image)",
                       parents=[common], epilog=EXIT_STATUS)
    s.add_argument("query", nargs="?", help="query text")
    s.add_argument("--image", help="query image (path or URL): similar images, or texts with --texts")
    s.add_argument("--texts", action="store_true", help="with --image: search the texts of add_texts")
    add_search_args(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_store_args(s)

    d = sub.add_parser("drop", help="delete a collection and its files (asks first unless --yes)",
                       parents=[common], epilog=EXIT_STATUS)
    d.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    add_store_args(d, model=False)

    i = sub.add_parser("info", help="collection statistics and model fingerprint (no model needed)",
                       parents=[common], epilog=EXIT_STATUS)
    add_store_args(i, model=False, required=False)
    u = sub.add_parser("upgrade", parents=[common], epilog=EXIT_STATUS,
                       help="add the model's first-stage vectors to a collection made without them (from the "
                       "stored vectors: no image is re-encoded)")
    add_store_args(u)
    add_serve_parser(sub, common)
    add_tool_parsers(sub)
    return p


def run_search(args: argparse.Namespace) -> int:
    if not args.query and not args.image:
        raise UsageError("give a query text or --image PATH")
    if args.query is not None and not args.query.strip():
        raise UsageError("the query text is empty")
    params = search_params(args)
    require_collection(args)
    with open_collection(args) as col:
        if args.image and args.texts:
            hits = col.search_texts(args.image, params=params)
        elif args.image:
            hits = col.search_by_image(args.image, params=params)
        else:
            hits = col.search(args.query, params=params)   # logs any unknown query words
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2, default=str))
        return 0
    for rank, h in enumerate(hits, args.offset + 1):
        where, p = h.text or h.uri or "-", "" if h.probability is None else f"  p={h.probability:.2f}"
        print(f"{rank:>3}  {h.score:9.4f}{p}  {str(h.id):<36}  {where}")
        if h.grounding:
            print("       " + ", ".join(f"{g.word}@({', '.join(f'{v:.0f}' for v in g.box)})" for g in h.grounding))
    if not hits:
        print("no hits")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..store_info import store_info

    if args.collection is None:
        print(json.dumps(list_store(args), indent=2))
        return 0
    require_collection(args, texts=True)
    print(json.dumps(store_info(args.collection, path=args.path, url=args.url, api_key=server_key(args),
                                backend=args.backend), indent=2, default=str))
    return 0


def run_drop(args: argparse.Namespace) -> int:
    """``vitr drop -c NAME``: delete a collection (and its texts companion) after asking."""
    from ..store_info import drop_collection

    require_collection(args)
    if not args.yes:
        where = args.url or store_path(args)
        answer = input(f"delete collection {args.collection!r} at {where} and everything in it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    drop_collection(args.collection, path=args.path, url=args.url, api_key=server_key(args), backend=args.backend)
    print(f"dropped collection {args.collection!r}")
    return 0


def run_upgrade(args: argparse.Namespace) -> int:
    from ..connectors import create_backend
    from ..encoders import load_model
    from ..upgrade import upgrade_collection

    path = store_path(args)
    if path is not None and not path.is_dir():
        raise UsageError(f"no store at {path} (nothing was created); check --path")
    model = load_model(args.model, device=args.device)
    with create_backend(path=path, url=args.url, api_key=server_key(args), backend=args.backend) as store:
        n = upgrade_collection(store, args.collection, model)
    print(f"collection {args.collection}: " + (f"first-stage vectors of {model.cfg.name} added to {n} images"
                                                if n else f"has the first-stage vectors of {model.cfg.name} already"))
    return 0


COMMANDS = {"search": run_search, "info": run_info, "index": run_index, "serve": run_serve, "upgrade": run_upgrade,
            "drop": run_drop}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vitr`` console script; returns the exit status (see ``EXIT_STATUS``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = {"verbose": False, "debug": False}
    while argv and argv[0] in GLOBAL_FLAGS:   # the tools parse their own arguments: take ours first
        flags[GLOBAL_FLAGS[argv.pop(0)]] = True
    if argv and argv[0] in TOOLS:
        name, run = argv[0], lambda: TOOLS[argv[0]](argv[1:])
    else:
        args = build_parser().parse_args(argv)
        flags = {k: flags[k] or getattr(args, k) for k in flags}
        if args.command is None:
            build_parser().print_help()
            return 0
        name, run = args.command, lambda: COMMANDS[args.command](args)
    logging.basicConfig(level=logging.INFO if flags["verbose"] or flags["debug"] else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_reporting_errors(name, run, flags["debug"])


def run_reporting_errors(name: str, run: Callable[[], int], debug: bool) -> int:
    """``run()``'s exit status; an error is one line on stderr (with ``debug``, its traceback too)."""
    try:
        return int(run() or 0)
    except KeyboardInterrupt:
        print(f"vitr {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the command line's edge: every error becomes one readable line
        if debug:
            traceback.print_exc()
        usage = isinstance(exc, (UsageError, ValueError, FileNotFoundError))
        hint = "" if debug or usage else " (--debug shows the traceback)"
        print(f"vitr {name}: {'' if isinstance(exc, UsageError) else 'error: '}{describe(exc)}{hint}",
              file=sys.stderr)
        return 2 if usage else 1


def describe(exc: BaseException) -> str:
    """One line saying what went wrong (no credentials of a URL in it): an unreachable server is named as such."""
    from qdrant_client.http.exceptions import ResponseHandlingException

    from ..sources.url_policy import redact_text

    text = redact_text(" ".join(str(exc).split())) or type(exc).__name__
    if isinstance(exc, ResponseHandlingException) or type(exc).__module__.startswith(("httpx", "httpcore")):
        return f"cannot reach the Qdrant server ({text}); check --url and that the server runs"
    return text


if __name__ == "__main__":
    raise SystemExit(main())
