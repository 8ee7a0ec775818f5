"""Move an embedded collection to a Qdrant server (or cluster), vectors and payloads as stored.

Needs: vitr-qdrant installed and a running Qdrant server (e.g. `docker run -p 6333:6333
qdrant/qdrant`). Nothing is re-encoded and no model is needed for the copy: the points are read
page by page with their vectors (the connectors' scroll, `iter_points(with_vectors=True)`; there
is no bulk export) and upserted into a collection created with the same model fingerprint and
storage options, so the model that built the store opens it on the server too. The texts of
`add_texts` (the `<name>__texts` companion) move along. --query then searches the server copy
through `VitrCollection(url=...)`. Without a server, --dest-path copies into a qdrant-client
local store instead (a dry run of the same code).

    python examples/move_to_server.py photos --url http://localhost:6333
    python examples/move_to_server.py photos --url https://xyz.cloud.qdrant.io --api-key KEY \
        --shard-number 6 --replication-factor 2 --query "a dog left of a cat" --model MODEL_DIR
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

import vitr_qdrant as vq
from vitr_qdrant.connectors import CollectionSpec, StoreBackend, create_backend
from vitr_qdrant.settings import default_data_dir
from vitr_qdrant.store_info import TEXTS_SUFFIX


def copy_collection(name: str, source_dir: str, dest: dict[str, Any], batch: int = 256) -> int:
    """Copy collection ``name`` of the embedded store in ``source_dir`` to ``dest``; returns the points copied."""
    with create_backend(path=source_dir) as src:
        meta = src.read_metadata(name)
        if meta is None:
            raise SystemExit(f"no collection {name!r} in {source_dir}; found: {src.list_collections()}")
        # The stored fingerprint and options, so the destination is the same collection.
        spec = CollectionSpec(name, **meta["schema"], fingerprint=meta["fingerprint"]).with_stored_options(meta)
        src.open_collection(spec, create=False)
        with create_backend(**dest) as dst:
            dst.open_collection(spec)
            dst.ensure_payload_indexes(src.payload_indexes())
            copied = _copy_points(src, dst, batch)
            if dst.count() < src.count():
                raise RuntimeError(f"{name}: {dst.count()} points at the destination, {src.count()} in the source")
    return copied


def check_server(dest: dict[str, Any]) -> None:
    """One quick call before the copy: an unreachable server is one line, not a round of retries
    and a traceback."""
    try:
        with create_backend(**dest, retries=1, check_compatibility=False) as store:
            store.list_collections()
    except Exception as exc:  # the script's edge: say it in one line
        raise SystemExit(f"move_to_server: cannot use the Qdrant server at {dest['url']}: "
                         f"{' '.join(str(exc).split())}") from None


def _copy_points(src: StoreBackend, dst: StoreBackend, batch: int) -> int:
    page, copied = [], 0
    for point in src.iter_points(batch_size=batch, with_vectors=True):
        page.append(point)
        if len(page) == batch:
            dst.upsert(page)   # durable when it returns: an interrupted copy can simply run again
            copied, page = copied + len(page), []
    if page:
        dst.upsert(page)
    return copied + len(page)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Copy an embedded collection to a Qdrant server.")
    ap.add_argument("collection")
    ap.add_argument("--path", help="embedded store directory (default: $VITR_QDRANT_HOME or the user data dir)")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="Qdrant server or cluster, e.g. http://localhost:6333")
    where.add_argument("--dest-path", help="a qdrant-client local store directory instead (no server)")
    ap.add_argument("--api-key")
    ap.add_argument("--shard-number", type=int, help="cluster: shards of the new collection")
    ap.add_argument("--replication-factor", type=int, help="cluster: copies of each shard")
    ap.add_argument("--write-consistency-factor", type=int, help="cluster: replicas that confirm a write")
    ap.add_argument("--batch", type=int, default=256, help="points per page and per upsert")
    ap.add_argument("--query", help="then search the copy (needs the model that built the collection)")
    ap.add_argument("--model", help="model name or directory for --query (default: the bundled model)")
    args = ap.parse_args(argv)

    source = args.path or str(default_data_dir())
    if args.url:
        dest = {"url": args.url, "api_key": args.api_key, "shard_number": args.shard_number,
                "replication_factor": args.replication_factor,
                "write_consistency_factor": args.write_consistency_factor}
        check_server(dest)
    else:
        dest = {"path": args.dest_path, "backend": "qdrant-local"}
    with create_backend(path=source) as store:
        names = [n for n in (args.collection, args.collection + TEXTS_SUFFIX) if store.read_metadata(n)]
    for name in names or [args.collection]:
        print(f"{name}: {copy_collection(name, source, dest, args.batch)} points copied")

    if args.query:
        options = {k: v for k, v in dest.items() if k not in ("shard_number", "replication_factor",
                                                               "write_consistency_factor")}
        with vq.VitrCollection(args.collection, model=vq.load_model(args.model), **options) as col:
            print(f"\n{len(col)} images at the destination; {args.query!r}:")
            for hit in col.search(args.query, limit=5):
                print(f"  {hit.score:8.3f}  {hit.uri or hit.id}")


if __name__ == "__main__":
    main()
