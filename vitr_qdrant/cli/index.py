"""``vitr index``: directories, URL lists and CSV files into a collection, optionally sharded."""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO, get_args

from .store import EXIT_STATUS, UsageError, add_store_args, list_store, open_collection, store_path
from ..sources.fetch import url_scheme
from ..settings import Settings

LIST_SUFFIXES = (".txt", ".urls", ".lst", ".list")
CSV_SUFFIXES = (".csv", ".tsv")
SHOWN = 20   # items listed per reason on the console


@dataclass
class Entry:
    """One image to index: ``item`` (path or URL), ``key`` (as written, for sharding), id,
    metadata, and ``where`` it was named (``photos.csv line 33``; None: on the command line or
    found in a directory)."""

    item: str
    key: str
    id: str | None = None
    metadata: dict[str, Any] | None = None
    where: str | None = None


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/n, e.g. 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``key`` (a path or URL as written) belongs to shard ``i`` of ``n``."""
    if shard is None:
        return True
    i, n = shard
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], 16) % n == i


def read_entries(inputs: list[str], image_column: str = "image", id_column: str | None = None,
                 metadata_columns: list[str] | None = None) -> Iterator[Entry]:
    """Expand the command's inputs: directories, list files, CSV/TSV files, files and URLs."""
    for inp in inputs:
        path = Path(inp)
        if url_scheme(inp):
            yield Entry(inp, inp)
        elif path.is_dir():
            from ..sources.inputs import iter_sources   # imports torch: not needed for `vitr --help`

            yield from (Entry(str(s.item), s.key) for s in iter_sources([path]))
        elif path.suffix.lower() in CSV_SUFFIXES and path.is_file():
            yield from _csv_entries(path, image_column, id_column, metadata_columns)
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.strip()
                if line and not line.startswith("#"):
                    yield Entry(_relative_to(path, line), line, where=f"{path} line {number}")
        else:
            yield Entry(inp, inp)


def _relative_to(listing: Path, value: str) -> str:
    """Paths in a list or CSV file are relative to that file's folder."""
    if url_scheme(value) or Path(value).is_absolute():
        return value
    return str(listing.parent / value)


def _csv_entries(path: Path, image_column: str, id_column: str | None,
                 metadata_columns: list[str] | None) -> Iterator[Entry]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        if image_column not in (reader.fieldnames or []):
            raise ValueError(f"{path} has no column {image_column!r}; columns: {reader.fieldnames}")
        keep = metadata_columns or [c for c in reader.fieldnames if c not in (image_column, id_column)]
        for row in reader:
            value = (row.get(image_column) or "").strip()
            meta = {c: _number(row[c]) for c in keep if row.get(c) not in (None, "")}
            yield Entry(_relative_to(path, value), value, row.get(id_column) if id_column else None, meta,
                        where=f"{path} line {reader.line_num}")


def _number(value: str) -> Any:
    """A CSV cell as an int or a finite float if it is one, else the text (``nan`` stays text)."""
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        return number if math.isfinite(number) else value
    return value


def add_index_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``vitr index``."""
    p = sub.add_parser("index", help="add images (directories, files, URLs, URL lists, CSV) to a collection",
                       parents=[common], epilog=EXIT_STATUS)
    p.add_argument("inputs", nargs="+", help="directories, image files, http(s) URLs, list files "
                   f"({', '.join(LIST_SUFFIXES)}: one path or URL per line) or CSV/TSV files")
    p.add_argument("--image-column", default="image", help="CSV column with the image path or URL")
    p.add_argument("--id-column", help="CSV column with the item id (default: content hash)")
    p.add_argument("--metadata-columns", type=lambda s: s.split(","),
                   help="comma-separated CSV columns to store (default: all other columns)")
    p.add_argument("--shard", type=parse_shard, help="i/n: index only the items whose path/URL hashes to i "
                   "(mod n), so n machines can share one job")
    default = Settings()   # the options left out keep the library's defaults
    p.add_argument("--batch-size", type=int, help=f"images per batch (default {default.batch_size}; try 256 on a GPU)")
    p.add_argument("--jpeg-decoder", choices=get_args(Settings.model_fields["jpeg_decoder"].annotation),
                   help=f"default {default.jpeg_decoder}: decode JPEGs in batches on the GPU (nvJPEG) when the "
                   f"model is on CUDA, else PIL")
    p.add_argument("--url-retries", type=int,
                   help=f"attempts per URL (transient errors only; default {default.url_retries})")
    p.add_argument("--url-allow", action="append", metavar="HOST",
                   help="a host that may be fetched although its address is not public (loopback, private, "
                   "link-local...): a name, address or network, optionally with :port (repeat for more; "
                   "default: public addresses only)")
    p.add_argument("--index-key", action="append", metavar="KEY[:KIND]",
                   help="index this payload key for fast filtered searches (kind: keyword (default), integer, "
                   "float, bool, text, datetime, uuid; repeat for more); searches never create indexes")
    p.add_argument("--compact", action="store_true",
                   help="a new collection stores its regions as turbo8, without the payload copy "
                   "(about 5 KB an image instead of about 30; slower reranking)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", help="also write the report (every skipped and failed item) as JSON to this file")
    add_store_args(p)


def check_inputs(args: argparse.Namespace) -> list[Entry]:
    """The entries to index; a missing input, a CSV without the image column or no image at
    all is a :class:`UsageError` (raised before anything is created)."""
    missing = [i for i in args.inputs if not url_scheme(i) and not _exists(i)]
    if missing:
        raise UsageError(f"no such file or directory: {', '.join(missing)} (nothing was indexed)")
    try:
        entries = list(read_entries(args.inputs, args.image_column, args.id_column, args.metadata_columns))
    except ValueError as exc:
        raise UsageError(f"{exc} (nothing was indexed)") from None
    if not entries:
        raise UsageError(f"no image files in {', '.join(args.inputs)} (nothing was indexed)")
    return [e for e in entries if in_shard(e.key, args.shard)]


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):   # a name too long, a NUL in it
        return False


def run_index(args: argparse.Namespace) -> int:
    """Run ``vitr index``: exit status 0 when every item was added or skipped, 1 when some failed."""
    from ..connectors import COMPACT_STORAGE

    entries = check_inputs(args)
    if store_path(args) is None:
        list_store(args)   # an unreachable server: one line now, not after a round of retries
    if not entries:
        print(f"{args.collection}: shard {args.shard[0]}/{args.shard[1]} holds none of the inputs; nothing to do")
        return 0
    ids = [e.id for e in entries] if any(e.id for e in entries) else None
    storage = COMPACT_STORAGE if args.compact else None
    with open_collection(args, storage, index_keys=args.index_key, batch_size=args.batch_size,
                         url_retries=args.url_retries, url_allow=args.url_allow, jpeg_decoder=args.jpeg_decoder) as col:
        report = col.add_images([e.item for e in entries], ids=ids, metadata=[e.metadata for e in entries],
                                progress=not args.no_progress)
        total = len(col)
    print(f"{args.collection}: {report.summary}; {total} images in the collection")
    failed = [(named(entries[n], item), reason) for (item, reason), n in zip(report.failed, report.failed_inputs)]
    print_items("replaced", report.replaced_items, sys.stdout, args.report)
    print_items("skipped", report.skipped_items, sys.stdout, args.report)
    print_items("failed", failed, sys.stderr, args.report)
    if args.report:
        Path(args.report).write_text(json.dumps(
            {"collection": args.collection, "added": report.added,
             **{what: [{"item": i, "reason": r} for i, r in items] for what, items in
                (("replaced", report.replaced_items), ("skipped", report.skipped_items), ("failed", failed))}},
            indent=2) + "\n")
    return 1 if report.failed else 0


def named(entry: Entry, item: str) -> str:
    """``item`` with the place its entry was named, if not the command line: ``photos.csv line 33: a.png``."""
    return item if entry.where is None else f"{entry.where}: {item}"


def print_items(what: str, items: list[tuple[str, str]], out: TextIO, report: str | None) -> None:
    """One line per item, the first ``SHOWN`` of each reason (a rerun of a large job skips
    every image: those lines would bury the rest); the rest are counted, and all are in --report."""
    shown: dict[str, int] = {}
    for item, reason in items:
        shown[reason] = shown.get(reason, 0) + 1
        if shown[reason] <= SHOWN:
            print(f"  {what}: {item}: {reason}", file=out)
    for reason, n in shown.items():
        if n > SHOWN:
            where = f"listed in {report}" if report else "--report FILE lists them"
            print(f"  {what}: {n - SHOWN} more: {reason} ({where})", file=out)
