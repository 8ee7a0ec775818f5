"""``vitr serve``: a collection behind an HTTP API and a search page (FastAPI + uvicorn)."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

from .store import EXIT_STATUS, UsageError, add_store_args, open_collection, require_collection
from ..errors import InputError

KEY_ENV = "VITR_SERVICE_KEY"


def add_serve_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``vitr serve``."""
    p = sub.add_parser("serve", help="serve a collection over HTTP: a JSON API (docs at /docs) and a search page",
                       parents=[common], epilog=EXIT_STATUS)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; any other needs a service key)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--service-key", default=None,
                   help=f"API key that clients send in the X-API-Key header (default: ${KEY_ENV}); printable "
                   "ASCII without spaces; not the Qdrant server's --api-key")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a Host name the service answers besides localhost, 127.0.0.1, ::1 and the --host "
                   "address (repeatable; the name a reverse proxy or other machines use; '*' for any); other "
                   "names get 421, so a web page cannot reach the service by DNS rebinding")
    p.add_argument("--uploads", help="allow adding images by upload (POST /items); they are kept in this "
                   "directory, named by their content hash")
    p.add_argument("--allow-delete", action="store_true", help="allow deleting items (DELETE /items/ID)")
    p.add_argument("--allow-updates", action="store_true", help="let an upload rewrite the metadata of an "
                   "image stored already (default: it is reported as skipped)")
    p.add_argument("--log-json", action="store_true", help="log (one line per request included) as JSON lines")
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


def service_key(args: argparse.Namespace) -> Any:
    """The key of ``--service-key`` or ``$VITR_SERVICE_KEY`` as a :class:`~.serve.guards.Secret`
    (None: no key), taken out of ``args`` so that no repr of them shows it."""
    from ..serve.guards import Secret

    given, args.service_key = args.service_key, None
    text = os.environ.get(KEY_ENV) if given is None else given
    if text is None:
        return None
    try:
        return Secret(text)
    except InputError as exc:
        source = "--service-key" if given is not None else f"${KEY_ENV}"
        raise UsageError(f"{source}: {exc}") from None


def run_serve(args: argparse.Namespace) -> int:
    """Check the options and the collection, then serve until interrupted."""
    key = service_key(args)
    if not is_loopback(args.host) and key is None:
        raise UsageError(f"--host {args.host} exposes the collection beyond this machine: give a key with "
                         f"--service-key or ${KEY_ENV} (clients send it as X-API-Key), or serve on 127.0.0.1 "
                         f"behind a reverse proxy")
    if not 0 < args.port < 65536 or args.max_upload_mb <= 0:
        raise UsageError("--port takes 1-65535 and --max-upload-mb a positive number")
    import uvicorn

    from ..serve import create_app
    from ..serve.access import configure_logging
    from ..serve.guards import default_hosts

    require_collection(args)
    with open_collection(args) as col:
        hosts = default_hosts(args.host, args.allowed_host)
        app = create_app(col, api_key=key, uploads=args.uploads, allow_delete=args.allow_delete,
                         allow_updates=args.allow_updates, max_body_bytes=int(args.max_upload_mb * 2**20),
                         allowed_hosts=hosts)
        print(f"vitr serve: {col.name} ({len(col)} images) at http://{args.host}:{args.port}{args.root_path}/ "
              f"(API docs at /docs), answering the host names {', '.join(hosts)} (--allowed-host adds one); "
              f"Ctrl-C stops", file=sys.stderr, flush=True)
        configure_logging(args.log_json)
        uvicorn.run(app, host=args.host, port=args.port, root_path=args.root_path, access_log=False,
                    log_config=None, log_level="info")
    return 0
