"""The ``ragguard ingest`` subcommand: sign a JSONL file of chunks into an EdgeStore.

::

    export RAGGUARD_SIGNING_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")
    ragguard ingest chunks.jsonl --store data/shard --key-id 2025-01 --dim 384

    ragguard ingest chunks.jsonl --store data/shard --key-id 2025-01 \
        --embeddings langchain_openai:OpenAIEmbeddings --embeddings-kwargs '{"model": "text-embedding-3-small"}'

Each line of the file is ``{"id": ..., "text": ..., "metadata": {...}}`` (``id`` and
``metadata`` optional; a ``vector`` list is used as is, other chunks are embedded). The
embedder is any LangChain ``Embeddings`` named by import path with ``--embeddings``
(``module:attribute`` or ``module.Class``; a class or factory is called with the JSON
object of ``--embeddings-kwargs``); without it, the deterministic, offline
:class:`ragguard.testing.HashEmbedder` (a test double: it matches words, not meaning).
The whole file is checked before anything is written. The key is read from an
environment variable, never from the command line (where ``ps`` and shell history would
show it).

Exit codes (see :mod:`ragguard._cli`): 0 ingested, 1 ingestion failed (signing, the
embedder or the store), 2 usage error (bad arguments, missing key, unreadable or
malformed file, an ``--embeddings`` path that does not import).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragguard._canonical import canonical_value
from ragguard._cli import EXIT_OK, CliUsageError, add_command, json_argument, positive_int
from ragguard.exceptions import ProvenanceError
from ragguard.provenance._ingest import Embeddings, Ingestor
from ragguard.provenance._signing import Signer

__all__ = ["load_embeddings", "register"]

DISTANCES = ("cosine", "dot", "euclid", "manhattan")
DEFAULT_DIM = 384
DEFAULT_KEY_ENV = "RAGGUARD_SIGNING_KEY"


class _InputError(Exception):
    """A line of the input file is unusable (message: ``file:line: problem``)."""


def register(subparsers: Any) -> None:
    """Add ``ingest`` to the ``ragguard`` command line."""
    parser = add_command(
        subparsers,
        "ingest",
        _run,
        help="sign chunks from a JSONL file and write them into an embedded store",
        description=(
            'Read {"id", "text", "metadata"} lines, add a signed provenance tag to each '
            "chunk's metadata, embed it (with --embeddings, else the offline hash embedder, "
            'unless the line has a "vector") and upsert it into an EdgeStore, created if absent. The signing '
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
        "--embeddings",
        metavar="MODULE:ATTR",
        default=None,
        help=(
            "a LangChain Embeddings by import path: module:attribute or module.Class "
            "(default: ragguard.testing.HashEmbedder, deterministic and offline)"
        ),
    )
    parser.add_argument(
        "--embeddings-kwargs",
        metavar="JSON",
        default=None,
        help="JSON object of keyword arguments for the --embeddings class (or @file.json)",
    )
    parser.add_argument(
        "--dim",
        type=positive_int,
        default=None,
        help=(
            f"vector dimension (default: the store's; for a new store {DEFAULT_DIM} with "
            "the hash embedder, else the length of the first embedded chunk)"
        ),
    )
    parser.add_argument(
        "--distance",
        choices=DISTANCES,
        default="cosine",
        help="distance of a new store (default: cosine)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=256, help="chunks per upsert (default: 256)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (none is shown off a terminal)"
    )


def _run(args: argparse.Namespace) -> int:
    key = os.environ.get(args.key_env, "")
    if not key:
        raise CliUsageError(
            f"no signing key: set the environment variable {args.key_env} "
            "(e.g. to the output of: python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    try:
        signer = Signer(key=key, key_id=args.key_id)
    except ProvenanceError as exc:
        raise CliUsageError(str(exc)) from None
    del key
    embeddings: _Guarded | None = None
    if args.embeddings is not None:
        kwargs: dict[str, Any] = {}
        if args.embeddings_kwargs is not None:
            kwargs = json_argument(args.embeddings_kwargs, "--embeddings-kwargs")
            if not isinstance(kwargs, dict):
                raise CliUsageError("--embeddings-kwargs must be a JSON object")
        embeddings = _Guarded(load_embeddings(args.embeddings, kwargs), args.embeddings)
    elif args.embeddings_kwargs is not None:
        raise CliUsageError("--embeddings-kwargs needs --embeddings")
    try:
        count, vector_dims = _check_file(args.file)
    except _InputError as exc:
        raise CliUsageError(str(exc)) from None
    if count == 0:
        raise CliUsageError(f"{args.file}: no chunks to ingest")

    from ragguard.stores.edge import EdgeStore, _interrupted_creation

    if args.store.exists() and not args.store.is_dir():
        raise CliUsageError(f"--store {args.store} is a file, not a shard directory")
    # A directory an interrupted create left holds no points: create replaces it.
    if args.store.exists() and any(args.store.iterdir()) and not _interrupted_creation(args.store):
        store = EdgeStore.open(str(args.store))
        if args.dim is not None and args.dim != store.dim:
            store.close()
            raise CliUsageError(
                f"--dim {args.dim} does not match the store at {args.store} (dimension {store.dim})"
            )
    else:
        new_dim = args.dim or _first_dim(embeddings, args.file, vector_dims)
        if vector_dims - {new_dim}:
            raise CliUsageError(_wrong_dims(args.file, vector_dims - {new_dim}, new_dim))
        store = EdgeStore.create(str(args.store), dim=new_dim, distance=args.distance)
    dim = store.dim
    try:
        if vector_dims - {dim}:
            raise CliUsageError(_wrong_dims(args.file, vector_dims - {dim}, dim))
        if embeddings is None:
            from ragguard.testing import HashEmbedder

            embedder: Embeddings = HashEmbedder(dim=dim)
        else:
            embedder = embeddings
        ingestor = Ingestor(
            store,
            signer=signer,
            embeddings=embedder,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
        ids = ingestor.ingest(_records(args.file), total=count)
        store.optimize()
    except _InputError as exc:  # the file changed between the check and the ingestion
        raise CliUsageError(f"{exc} (chunks before this line were written)") from None
    finally:
        store.close()
    print(
        f"ingested {len(ids)} chunks from {args.file} into {args.store} "
        f"(key id {signer.key_id!r}, dimension {dim})"
    )
    return EXIT_OK


def _wrong_dims(path: Path, dims: set[int], expected: int) -> str:
    return f"{path} has vectors of dimension {sorted(dims)}; the store holds dimension {expected}"


def load_embeddings(spec: str, kwargs: dict[str, Any] | None = None) -> Embeddings:
    """The embedder named by ``spec``: ``module:attribute`` or ``module.attribute``.

    The attribute may be dotted (``pkg.mod:Factory.create``). A class or other callable
    is called with ``kwargs``; an object that already has ``embed_documents`` is used as
    is (then ``kwargs`` must be empty). Every way this can go wrong is a
    :class:`~ragguard._cli.CliUsageError` naming ``spec``.
    """
    kwargs = kwargs or {}
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
    else:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise CliUsageError(
            f"--embeddings {spec!r}: expected module:attribute or module.Class, "
            "e.g. langchain_openai:OpenAIEmbeddings"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliUsageError(
            f"--embeddings {spec!r}: cannot import module {module_name!r} ({exc}); "
            "is the package installed in this environment?"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliUsageError(
                f"--embeddings {spec!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if callable(getattr(target, "embed_documents", None)) and not isinstance(target, type):
        if kwargs:
            raise CliUsageError(
                f"--embeddings {spec!r} is an embedder instance: it takes no --embeddings-kwargs"
            )
        return target  # type: ignore[no-any-return]
    if not callable(target):
        raise CliUsageError(
            f"--embeddings {spec!r} is a {type(target).__name__}, not an Embeddings class, "
            "factory or instance"
        )
    try:
        embedder = target(**kwargs)
    except Exception as exc:
        raise CliUsageError(
            f"--embeddings {spec!r}: constructing it failed: {type(exc).__name__}: {exc}"
        ) from None
    if not callable(getattr(embedder, "embed_documents", None)):
        raise CliUsageError(
            f"--embeddings {spec!r} made a {type(embedder).__name__}, which has no "
            "embed_documents(texts) method"
        )
    return embedder  # type: ignore[no-any-return]


class _Guarded:
    """An embedder whose failures are ingestion errors (exit 1) naming no chunk text."""

    def __init__(self, inner: Embeddings, spec: str) -> None:
        self.inner = inner
        self.spec = spec

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        try:
            return self.inner.embed_documents(texts)
        except Exception as exc:
            # Only the exception's type: its message may quote the texts.
            raise ProvenanceError(
                f"the embedder {self.spec!r} failed on a batch of {len(texts)} chunks: "
                f"{type(exc).__name__}"
            ) from exc


def _first_dim(embeddings: _Guarded | None, path: Path, vector_dims: set[int]) -> int:
    """The dimension of a new store when ``--dim`` is not given.

    The hash embedder's default; else the file's vectors' one dimension; else the
    length of the first chunk's embedding (one extra embedder call).
    """
    if embeddings is None:
        return DEFAULT_DIM
    if len(vector_dims) == 1:
        return next(iter(vector_dims))
    first = next(_records(path))
    probe = embeddings.embed_documents([first["text"]])
    if len(probe) != 1 or not probe[0]:
        raise ProvenanceError(f"the embedder {embeddings.spec!r} returned no vector")
    return len(probe[0])


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
