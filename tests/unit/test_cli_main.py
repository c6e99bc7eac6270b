"""The command line's shared parts: exit codes, --version, help, typed arguments, --embeddings."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import ragguard
from ragguard import _cli
from ragguard._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliUsageError, build_parser, main
from ragguard.exceptions import StoreError
from ragguard.provenance import ProvenanceCheck
from ragguard.provenance.cli import load_embeddings

KEY = "cli-test-key-0123456789abcdef0123"

EMBEDDER_MODULE = '''
"""A tiny LangChain-style Embeddings for the --embeddings tests."""

CALLS = []


class TinyEmbeddings:
    """Three-dimensional vectors from the text's length; counts its calls."""

    def __init__(self, scale: float = 1.0, dim: int = 3) -> None:
        self.scale = scale
        self.dim = dim

    def embed_documents(self, texts):
        CALLS.append(len(texts))
        return [[self.scale * (len(t) + i) for i in range(self.dim)] for t in texts]

    def embed_query(self, text):
        return self.embed_documents([text])[0]


class Broken:
    def embed_documents(self, texts):
        raise RuntimeError("the service said no to: " + texts[0])


INSTANCE = TinyEmbeddings(scale=2.0)
NOT_AN_EMBEDDER = 42


def make(dim: int = 3):
    return TinyEmbeddings(dim=dim)
'''


@pytest.fixture
def embedder_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``tiny_embedder_for_cli`` importable from ``sys.path`` (a module of this test)."""
    import importlib
    import sys

    package = tmp_path / "modules"
    package.mkdir()
    (package / "tiny_embedder_for_cli.py").write_text(textwrap.dedent(EMBEDDER_MODULE))
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.delitem(sys.modules, "tiny_embedder_for_cli", raising=False)
    module = importlib.import_module("tiny_embedder_for_cli")
    yield module
    sys.modules.pop("tiny_embedder_for_cli", None)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "chunks.jsonl"
    lines = [
        {"id": f"doc-{i}", "text": "x" * (i + 1), "metadata": {"tenant": "acme", "level": i}}
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RAGGUARD_SIGNING_KEY", KEY)
    return KEY


def _ingest(corpus: Path, store: Path, *extra: str) -> int:
    return main(["ingest", str(corpus), "--store", str(store), "--key-id", "k1", *extra])


# --- the entry point ---------------------------------------------------------------------


def test_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``ragguard --version`` exits 0 and prints ``ragguard.__version__``."""
    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"ragguard {ragguard.__version__}"


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert ragguard.__version__ == version("ragguard")
    assert "__version__" in ragguard.__all__


def test_top_level_description_lists_every_command() -> None:
    """Every subcommand (and the audit subcommands) is named in ``ragguard --help``."""
    parser = build_parser()
    description = parser.description or ""
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    names = list(subparsers.choices)
    assert {"demo", "plan", "explain", "ingest", "audit"} <= set(names)
    audit = subparsers.choices["audit"]
    nested = next(a for a in audit._actions if isinstance(a, argparse._SubParsersAction))
    names += list(nested.choices)
    for name in names:
        assert f"  {name} " in description, name


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert "COMMAND" in capsys.readouterr().err


def test_argparse_errors_return_2_instead_of_raising(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == EXIT_USAGE
    assert "invalid choice" in capsys.readouterr().err


def _with_handler(monkeypatch: pytest.MonkeyPatch, raised: BaseException) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise raised

    real = _cli.build_parser

    def build() -> argparse.ArgumentParser:
        parser = real()
        parser.set_defaults(handler=handler)
        return parser

    monkeypatch.setattr(_cli, "build_parser", build)


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (CliUsageError("--thing is wrong"), EXIT_USAGE, "ragguard: error: --thing is wrong"),
        (StoreError("the shard is gone"), EXIT_FAILED, "ragguard: error: the shard is gone"),
        (KeyboardInterrupt(), 130, ""),
    ],
)
def test_main_maps_what_a_handler_raises_to_one_exit_code(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: BaseException,
    code: int,
    message: str,
) -> None:
    """Usage errors exit 2, any RagGuardError exits 1, both with the command's prog."""
    _with_handler(monkeypatch, raised)
    assert main([]) == code
    assert message in capsys.readouterr().err


def test_a_usage_error_names_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["audit", "verify", str(tmp_path / "x.jsonl"), "--key-env", "RAGGUARD_NOT_SET_X"])
    assert code == EXIT_USAGE
    assert "ragguard audit verify: error: --key-env RAGGUARD_NOT_SET_X" in capsys.readouterr().err


# --- typed ingest arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--distance", "hamming"], "invalid choice: 'hamming'"),
        (["--dim", "zero"], "expected an integer, got 'zero'"),
        (["--dim", "0"], "must be at least 1, got 0"),
        (["--batch-size", "-3"], "must be at least 1, got -3"),
        (["--batch-size", "1.5"], "expected an integer"),
    ],
)
def test_ingest_rejects_bad_typed_arguments_before_reading_anything(
    corpus: Path,
    key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    assert _ingest(corpus, tmp_path / "shard", *argv) == EXIT_USAGE
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "shard").exists()


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclid", "manhattan"])
def test_every_distance_choice_creates_a_store(
    corpus: Path, key: str, tmp_path: Path, distance: str
) -> None:
    from ragguard.stores.edge import EdgeStore

    shard = tmp_path / "shard"
    assert _ingest(corpus, shard, "--dim", "8", "--distance", distance, "--no-progress") == 0
    store = EdgeStore.open(str(shard))
    try:
        assert store.count() == 4
        assert store.distance == distance
    finally:
        store.close()


# --- --embeddings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["tiny_embedder_for_cli:TinyEmbeddings", "tiny_embedder_for_cli.TinyEmbeddings"]
)
def test_ingest_embeds_with_the_named_class(
    embedder_module: Any, corpus: Path, key: str, tmp_path: Path, spec: str
) -> None:
    """Both spellings load the class; a new store takes the embedder's dimension."""
    shard = tmp_path / "shard"
    argv = ["--embeddings", spec, "--embeddings-kwargs", '{"scale": 0.5}', "--distance", "dot"]
    assert _ingest(corpus, shard, *argv, "--no-progress") == EXIT_OK
    hits = _search(shard, [1.0, 0.0, 0.0])
    # Each chunk's vector is 0.5 * (len(text) + i): its dot product with e1 is 0.5 * len(text).
    assert [(hit.text, hit.score) for hit in hits] == [
        ("xxxx", 2.0),
        ("xxx", 1.5),
        ("xx", 1.0),
        ("x", 0.5),
    ]
    check = ProvenanceCheck(keys={"k1": KEY})
    assert all(check.verify(h.text, h.metadata).status == "verified" for h in hits)
    # One call to learn the dimension, then one per batch.
    assert embedder_module.CALLS == [1, 4]


def _search(shard: Path, vector: list[float]) -> list[Any]:
    from ragguard.policy import ir
    from ragguard.stores.edge import EdgeStore

    store = EdgeStore.open(str(shard))
    try:
        assert store.dim == len(vector)
        return store.search(vector, 10, store.translate(ir.TRUE), exact=True)
    finally:
        store.close()


def test_ingest_uses_an_instance_and_a_factory(
    embedder_module: Any, corpus: Path, key: str, tmp_path: Path
) -> None:
    assert _ingest(corpus, tmp_path / "a", "--embeddings", "tiny_embedder_for_cli:INSTANCE") == 0
    code = _ingest(
        corpus,
        tmp_path / "b",
        "--embeddings",
        "tiny_embedder_for_cli:make",
        "--embeddings-kwargs",
        '{"dim": 5}',
        "--dim",
        "5",
    )
    assert code == 0


def test_hash_embedder_stays_the_default(corpus: Path, key: str, tmp_path: Path) -> None:
    """Without --embeddings a new store gets 384 dimensions from the hash embedder."""
    from ragguard.testing import HashEmbedder

    shard = tmp_path / "shard"
    assert _ingest(corpus, shard, "--no-progress") == 0
    [best, *_] = _search(shard, HashEmbedder(dim=384).embed_query("xx"))
    assert best.text == "xx"
    assert best.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("spec", "kwargs", "expected"),
    [
        ("no_such_module_for_ragguard:Thing", None, "cannot import module 'no_such_module"),
        ("tiny_embedder_for_cli:Missing", None, "has no attribute 'Missing'"),
        ("tiny_embedder_for_cli", None, "expected module:attribute or module.Class"),
        ("tiny_embedder_for_cli:", None, "expected module:attribute or module.Class"),
        ("tiny_embedder_for_cli:NOT_AN_EMBEDDER", None, "is a int, not an Embeddings"),
        ("tiny_embedder_for_cli:TinyEmbeddings", '{"colour": 1}', "constructing it failed"),
        ("tiny_embedder_for_cli:TinyEmbeddings", "[1]", "must be a JSON object"),
        ("tiny_embedder_for_cli:TinyEmbeddings", "{", "is not valid JSON"),
        ("tiny_embedder_for_cli:INSTANCE", '{"scale": 1}', "takes no --embeddings-kwargs"),
        ("argparse:Namespace", None, "has no embed_documents"),
    ],
)
def test_unusable_embeddings_are_usage_errors_and_write_nothing(
    embedder_module: Any,
    corpus: Path,
    key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spec: str,
    kwargs: str | None,
    expected: str,
) -> None:
    extra = ["--embeddings", spec] + ([] if kwargs is None else ["--embeddings-kwargs", kwargs])
    assert _ingest(corpus, tmp_path / "shard", *extra) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "ragguard ingest: error:" in err
    assert expected in err
    assert not (tmp_path / "shard").exists()


def test_embeddings_kwargs_without_embeddings_is_a_usage_error(
    corpus: Path, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ingest(corpus, tmp_path / "shard", "--embeddings-kwargs", "{}") == EXIT_USAGE
    assert "needs --embeddings" in capsys.readouterr().err


def test_a_failing_embedder_exits_1_without_quoting_chunk_text(
    embedder_module: Any,
    corpus: Path,
    key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = _ingest(
        corpus, tmp_path / "shard", "--embeddings", "tiny_embedder_for_cli:Broken", "--dim", "3"
    )
    assert code == EXIT_FAILED
    err = capsys.readouterr().err
    assert "failed on a batch of 4 chunks: RuntimeError" in err
    assert "xxxx" not in err
    assert "said no" not in err


def test_load_embeddings_resolves_dotted_attributes(embedder_module: Any) -> None:
    embedder = load_embeddings("tiny_embedder_for_cli:TinyEmbeddings", {"dim": 2})
    assert embedder.embed_documents(["ab"]) == [[2.0, 3.0]]
    assert load_embeddings("tiny_embedder_for_cli:INSTANCE") is embedder_module.INSTANCE
    with pytest.raises(CliUsageError, match=r"no attribute 'INSTANCE\.nope'"):
        load_embeddings("tiny_embedder_for_cli:INSTANCE.nope")
