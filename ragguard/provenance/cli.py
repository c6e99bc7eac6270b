"""The ``ragguard ingest`` subcommand: sign a JSONL file of chunks into an EdgeStore.

::

    export RAGGUARD_SIGNING_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")
    ragguard ingest chunks.jsonl --store data/shard --key-id 2025-01 --dim 384

Each line of the file is ``{"id": ..., "text": ..., "metadata": {...}}`` (``id`` and
``metadata`` optional; a ``vector`` list is used as is, other chunks are embedded with
the deterministic :class:`ragguard.testing.HashEmbedder`). The whole file is checked
before anything is written. The key is read from an environment variable, never from
the command line (where ``ps`` and shell history would show it).

Exit codes: 0 ingested, 1 ingestion failed (signing or the store), 2 usage error (bad
arguments, missing key, unreadable or malformed file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragguard._canonical import canonical_value
from ragguard.exceptions import ProvenanceError
from ragguard.provenance._ingest import Ingestor
from ragguard.provenance._signing import Signer

__all__ = ["register"]

EXIT_OK = 0
EXIT_USAGE = 2
DEFAULT_DIM = 384
DEFAULT_KEY_ENV = "RAGGUARD_SIGNING_KEY"


class _InputError(Exception):
    """A line of the input file is unusable (message: ``file:line: problem``)."""


def register(subparsers: Any) -> None:
    """Add ``ingest`` to the ``ragguard`` command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ingest",
        help="sign chunks from a JSONL file and write them into an embedded store",
        description=(
            'Read {"id", "text", "metadata"} lines, add a signed provenance tag to each '
            "chunk's metadata, embed it (deterministic hash embedder unless the line has "
            'a "vector") and upsert it into an EdgeStore, created if absent. The signing '
            "key comes from an environment variable, never from the command line."
        ),
    )
    parser.add_argument("file", type=Path, help="JSONL file, one chunk per line")
    parser.add_argument(
        "--store", type=Path, required=True, help="EdgeStore shard directory (created if absent)"
    )
    parser.add_argument(
        "--key-id", required=True, help="id of the signing key (what verifiers look it up by)"
    )
    parser.add_argument(
        "--key-env",
        default=DEFAULT_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the signing key (default: {DEFAULT_KEY_ENV})",
    )
    parser.add_argument(
        "--dim",
        type=int,
        default=None,
        help=f"vector dimension (default: the store's, or {DEFAULT_DIM} for a new store)",
    )
    parser.add_argument(
        "--distance",
        default="cosine",
        help="distance of a new store (default: cosine)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=256, help="chunks per upsert (default: 256)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (none is shown off a terminal)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    key = os.environ.get(args.key_env, "")
    if not key:
        return _usage(
            f"no signing key: set the environment variable {args.key_env} "
            "(e.g. to the output of: python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    try:
        signer = Signer(key=key, key_id=args.key_id)
    except ProvenanceError as exc:
        return _usage(str(exc))
    del key
    if args.batch_size < 1:
        return _usage("--batch-size must be at least 1")
    if args.dim is not None and args.dim < 1:
        return _usage("--dim must be at least 1")
    try:
        count, vector_dims = _check_file(args.file)
    except _InputError as exc:
        return _usage(str(exc))
    if count == 0:
        return _usage(f"{args.file}: no chunks to ingest")

    from ragguard.stores.edge import EdgeStore
    from ragguard.testing import HashEmbedder

    if args.store.exists() and not args.store.is_dir():
        return _usage(f"--store {args.store} is a file, not a shard directory")
    if args.store.exists() and any(args.store.iterdir()):
        store = EdgeStore.open(str(args.store))
        if args.dim is not None and args.dim != store.dim:
            store.close()
            return _usage(
                f"--dim {args.dim} does not match the store at {args.store} (dimension {store.dim})"
            )
    else:
        new_dim = args.dim or DEFAULT_DIM
        if vector_dims - {new_dim}:
            return _usage(_wrong_dims(args.file, vector_dims - {new_dim}, new_dim))
        store = EdgeStore.create(str(args.store), dim=new_dim, distance=args.distance)
    dim = store.dim
    try:
        if vector_dims - {dim}:
            return _usage(_wrong_dims(args.file, vector_dims - {dim}, dim))
        ingestor = Ingestor(
            store,
            signer=signer,
            embeddings=HashEmbedder(dim=dim),
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
        ids = ingestor.ingest(_records(args.file), total=count)
        store.optimize()
    except _InputError as exc:  # the file changed between the check and the ingestion
        return _usage(f"{exc} (chunks before this line were written)")
    finally:
        store.close()
    print(
        f"ingested {len(ids)} chunks from {args.file} into {args.store} "
        f"(key id {signer.key_id!r}, dimension {dim})"
    )
    return EXIT_OK


def _wrong_dims(path: Path, dims: set[int], expected: int) -> str:
    return f"{path} has vectors of dimension {sorted(dims)}; the store holds dimension {expected}"


def _usage(message: str) -> int:
    print(f"ragguard ingest: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _check_file(path: Path) -> tuple[int, set[int]]:
    """Validate every line (so nothing is written from a bad file).

    Returns the number of chunks and the dimensions of the vectors the file carries.
    """
    count, dims = 0, set()
    for record in _records(path):
        count += 1
        if record["vector"]:
            dims.add(len(record["vector"]))
    return count, dims


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The file's chunks as ``{"id", "text", "metadata", "vector"}`` mappings."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise _InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield _parse_line(line, f"{path}:{number}")
        except UnicodeDecodeError:
            raise _InputError(f"{path}: not UTF-8 text") from None


def _parse_line(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _InputError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise _InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - {"id", "text", "metadata", "vector"})
    if unknown:
        raise _InputError(f"{where}: unknown fields {unknown}; expected id, text, metadata, vector")
    text, metadata, chunk_id, vector = (
        record.get("text"),
        record.get("metadata", {}),
        record.get("id"),
        record.get("vector"),
    )
    if not isinstance(text, str):
        raise _InputError(f'{where}: "text" must be a string')
    if not isinstance(metadata, dict):
        raise _InputError(f'{where}: "metadata" must be an object')
    if chunk_id is not None and (
        isinstance(chunk_id, bool) or not isinstance(chunk_id, (str, int))
    ):
        raise _InputError(f'{where}: "id" must be a string or an integer')
    if isinstance(chunk_id, int) and chunk_id < 0:
        raise _InputError(f'{where}: an integer "id" must be non-negative')
    if vector is not None and (
        not isinstance(vector, list)
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector)
    ):
        raise _InputError(f'{where}: "vector" must be a list of numbers')
    try:
        canonical_value(metadata, "metadata")
    except ProvenanceError as exc:
        raise _InputError(f"{where}: cannot be signed: {exc}") from None
    return {"id": chunk_id, "text": text, "metadata": metadata, "vector": vector}
