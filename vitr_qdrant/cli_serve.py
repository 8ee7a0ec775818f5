"""``vitr serve``: a collection behind an HTTP API and a search page (FastAPI + uvicorn)."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

from .cli_store import EXIT_STATUS, UsageError, add_store_args, open_collection, require_collection

KEY_ENV = "VITR_SERVICE_KEY"


def add_serve_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``vitr serve``."""
    p = sub.add_parser("serve", help="serve a collection over HTTP: a JSON API (docs at /docs) and a search page",
                       parents=[common], epilog=EXIT_STATUS)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; any other needs a service key)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--service-key", default=os.environ.get(KEY_ENV),
                   help=f"API key that clients send in the X-API-Key header (default: ${KEY_ENV}); "
                   "not the Qdrant server's --api-key")
    p.add_argument("--uploads", help="allow adding images by upload (POST /items); they are kept in this "
                   "directory, named by their content hash")
    p.add_argument("--allow-delete", action="store_true", help="allow deleting items (DELETE /items/ID)")
    p.add_argument("--max-upload-mb", type=float, default=10.0,
                   help="largest request body accepted, uploads included, in MiB (default: 10)")
    p.add_argument("--root-path", default="", help="URL prefix when a reverse proxy serves this under a "
                   "sub-path (e.g. /images)")
    add_store_args(p)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(args: argparse.Namespace) -> int:
    """Check the options and the collection, then serve until interrupted."""
    if not is_loopback(args.host) and not args.service_key:
        raise UsageError(f"--host {args.host} exposes the collection beyond this machine: give a key with "
                         f"--service-key or ${KEY_ENV} (clients send it as X-API-Key), or serve on 127.0.0.1 "
                         f"behind a reverse proxy")
    if not 0 < args.port < 65536 or args.max_upload_mb <= 0:
        raise UsageError("--port takes 1-65535 and --max-upload-mb a positive number")
    import uvicorn

    from .serve import create_app

    require_collection(args)
    with open_collection(args) as col:
        app = create_app(col, api_key=args.service_key, uploads=args.uploads, allow_delete=args.allow_delete,
                         max_body_bytes=int(args.max_upload_mb * 2**20))
        print(f"vitr serve: {col.name} ({len(col)} images) at http://{args.host}:{args.port}{args.root_path}/ "
              f"(API docs at /docs); Ctrl-C stops", file=sys.stderr, flush=True)
        uvicorn.run(app, host=args.host, port=args.port, root_path=args.root_path,
                    log_level="info" if args.verbose or args.debug else "warning")
    return 0
