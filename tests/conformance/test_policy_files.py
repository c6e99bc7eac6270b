"""``Policy.from_casbin(model.conf, policy.csv)`` reads the files exactly as Casbin does.

The oracle in the other conformance tests takes its policy lines through Casbin's API;
here the *files* are the input: ``casbin.Enforcer(model_path, policy_path)`` (pycasbin's
file adapter) and ragguard must hold the same lines, and so decide the same.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import casbin
import pytest
from _casbin_oracle import CasbinOracle
from _conformance import conformance_settings
from hypothesis import given
from hypothesis import strategies as st

import ragguard as rg

MODEL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = (r.sub.id == p.sub || g(r.sub.id, p.sub)) && r.obj.dept == p.obj && r.act == p.act
"""

EVAL_MODEL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, rule, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub.id == p.sub && eval(p.rule) && r.act == p.act
"""

# Pieces of a value: plain words, quotes, commas inside and outside brackets, spaces.
_piece = st.sampled_from(
    ["alice", "eng", "a b", '"', '"alice"', "'x'", "(a, b)", "[1,2]", "(", ")", ",", " ", "#", "é"]
)
_value = st.lists(_piece, min_size=1, max_size=4).map("".join)


def _write(tmp: Path, policy_text: str) -> tuple[Path, Path]:
    model_path, policy_path = tmp / "model.conf", tmp / "policy.csv"
    model_path.write_text(MODEL, encoding="utf-8")
    policy_path.write_text(policy_text, encoding="utf-8")
    return model_path, policy_path


def _casbin_lines(model_path: Path, policy_path: Path) -> tuple[Any, Any] | None:
    """The p and g lines as pycasbin's file adapter reads them, or None if it fails."""
    try:
        enforcer = casbin.Enforcer(str(model_path), str(policy_path))
    except Exception:
        return None
    return enforcer.get_policy(), enforcer.get_grouping_policy()


def test_policy_lines_are_read_as_casbin_reads_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Quotes stay part of a value, commas split only outside ()/[]: as in pycasbin."""
    tmp = tmp_path_factory.mktemp("files")

    @conformance_settings(300)
    @given(
        rows=st.lists(
            st.tuples(st.sampled_from(["p", "g"]), st.lists(_value, min_size=1, max_size=4)),
            min_size=1,
            max_size=4,
        ),
        separator=st.sampled_from([", ", ",", " , "]),
    )
    def same_lines(rows: list[tuple[str, list[str]]], separator: str) -> None:
        text = "".join(separator.join([key, *values]) + "\n" for key, values in rows)
        model_path, policy_path = _write(tmp, text)
        expected = _casbin_lines(model_path, policy_path)
        if expected is None or any(len(line) != 3 for line in expected[0]):
            # Casbin fails on this file (or holds p lines of the wrong length, which fail
            # at enforce time): ragguard refuses it when loading. (Longer g lines are
            # truncated to the role definition by both.)
            with pytest.raises(rg.PolicyLoadError):
                rg.Policy.from_casbin(model_path, policy_path)
            return
        policy = rg.Policy.from_casbin(model_path, policy_path)
        got = (policy.enforcer.get_policy(), policy.enforcer.get_grouping_policy())
        assert got == expected, text

    same_lines()


def test_a_quoted_value_grants_what_casbin_grants(tmp_path: Path) -> None:
    """Regression: ragguard read ``"alice"`` as ``alice`` (CSV) and released chunks that
    ``casbin.enforce`` on the same files denies; Casbin keeps the quotes."""
    text = 'p, "alice", eng, read\np, bob, "eng", read\n'
    model_path, policy_path = _write(tmp_path, text)
    policy = rg.Policy.from_casbin(model_path, policy_path)
    oracle = CasbinOracle(MODEL, text)
    for who in ("alice", "bob", '"alice"'):
        decision = policy.check(rg.Subject(id=who), {"dept": "eng"})
        assert decision.released is oracle.enforce(who, {}, {"dept": "eng"}), who
    assert policy.check(rg.Subject(id='"alice"'), {"dept": "eng"}).released
    assert not policy.check(rg.Subject(id="alice"), {"dept": "eng"}).released


def test_an_eval_rule_with_a_tuple_is_one_value(tmp_path: Path) -> None:
    """Regression: ``r.obj.dept in ("eng", "hr")`` in a policy line is one value to
    Casbin; ragguard split it at the comma and refused a valid policy."""
    (tmp_path / "model.conf").write_text(EVAL_MODEL, encoding="utf-8")
    text = 'p, alice, r.obj.dept in ("eng", "hr") && r.obj.level <= 2, read\n'
    (tmp_path / "policy.csv").write_text(text, encoding="utf-8")
    policy = rg.Policy.from_casbin(tmp_path / "model.conf", tmp_path / "policy.csv")
    enforcer = casbin.Enforcer(str(tmp_path / "model.conf"), str(tmp_path / "policy.csv"))
    assert policy.enforcer.get_policy() == enforcer.get_policy()
    oracle = CasbinOracle(EVAL_MODEL, text)
    alice = rg.Subject(id="alice")
    for metadata in ({"dept": "hr", "level": 1}, {"dept": "eng", "level": 3}, {"dept": "x"}):
        assert policy.check(alice, metadata).released is oracle.enforce("alice", {}, metadata)
    assert policy.check(alice, {"dept": "hr", "level": 1}).released


def test_a_quoted_eval_rule_is_refused_not_read_as_a_rule(tmp_path: Path) -> None:
    """A quoted rule is a string to Casbin (truthy: it would grant everything);
    ragguard refuses it at load time instead of guessing either way."""
    with pytest.raises(rg.UnsupportedPolicyError, match="policy line 1"):
        rg.Policy.from_casbin(EVAL_MODEL, 'p, alice, "r.obj.level <= 1", read\n')


# -- file bytes: line endings, byte order marks, encodings -----------------------------

_SUBJECTS = ("alice", "bob", "eve", "mallory")
_DEPTS = ("eng", "hr", "legal")


def _casbin_on_files(model_path: Path, policy_path: Path) -> dict[tuple[str, str], bool] | None:
    """pycasbin's own decisions on the files (its FileAdapter), or None when it fails."""
    try:
        enforcer = casbin.Enforcer(str(model_path), str(policy_path))
        return {
            (who, dept): bool(
                enforcer.enforce(SimpleNamespace(id=who), SimpleNamespace(dept=dept), "read")
            )
            for who in _SUBJECTS
            for dept in _DEPTS
        }
    except Exception:
        return None


def _ragguard_on_files(model_path: Path, policy_path: Path) -> dict[tuple[str, str], bool]:
    policy = rg.Policy.from_casbin(model_path, policy_path)
    return {
        (who, dept): policy.check(rg.Subject(id=who), {"dept": dept}).released
        for who in _SUBJECTS
        for dept in _DEPTS
    }


def _same_as_casbin(model_bytes: bytes, policy_bytes: bytes, tmp: Path) -> None:
    """ragguard decides as casbin.enforce on the same file bytes, or refuses the files."""
    model_path, policy_path = tmp / "model.conf", tmp / "policy.csv"
    model_path.write_bytes(model_bytes)
    policy_path.write_bytes(policy_bytes)
    expected = _casbin_on_files(model_path, policy_path)
    if expected is None:
        with pytest.raises(rg.PolicyLoadError):
            rg.Policy.from_casbin(model_path, policy_path)
        return
    try:
        got = _ragguard_on_files(model_path, policy_path)
    except rg.PolicyLoadError:
        # Refusing is allowed where Casbin silently ignores a line ragguard cannot
        # account for (an unknown line type, a rule behind a byte order mark), or
        # holds a p line of the wrong length (which fails at enforce time).
        lines = casbin.Enforcer(str(model_path), str(policy_path)).get_policy()
        silently_ignored = any(
            raw.strip()
            and not raw.strip().startswith("#")
            and raw.strip().split(",")[0].strip() not in ("p", "g")
            for raw in policy_bytes.decode("utf-8").split("\n")
        )
        assert silently_ignored or any(len(line) != 3 for line in lines), policy_bytes
        return
    assert got == expected, policy_bytes


_MODEL_BYTES = MODEL.encode("utf-8")


@pytest.mark.parametrize(
    ("policy_bytes", "eve_reads_hr"),
    [
        # The file: a lone CR inside a comment does not end the comment.
        (b"p, alice, eng, read\n# revoked:\rp, eve, hr, read\n", False),
        (b"p, alice, eng, read\r\np, eve, hr, read\r\n", True),
        (b"p, alice, eng, read\r\n# revoked:\rp, eve, hr, read\r\n", False),
        (b"p, alice, eng\r, read\np, eve,\rhr, read\n", True),
        (b"p, alice, eng, read \t\r\n\r\n  p, eve, hr, read\t\n", True),
        (b"\xef\xbb\xbf# policy\np, alice, eng, read\np, eve, hr, read\n", True),
        (b"\xef\xbb\xbf\np, alice, eng, read\n", False),
        (b"g, eve, staff\rp, staff, hr, read\np, alice, eng, read\n", False),
    ],
)
def test_policy_file_bytes_are_read_as_casbin_reads_them(
    tmp_path: Path, policy_bytes: bytes, eve_reads_hr: bool
) -> None:
    """Regression: a lone ``\\r`` ended a policy line for ragguard (``Path.read_text``),
    not for Casbin's file adapter, so a rule commented out for Casbin was live."""
    _same_as_casbin(_MODEL_BYTES, policy_bytes, tmp_path)
    policy = rg.Policy.from_casbin(tmp_path / "model.conf", tmp_path / "policy.csv")
    assert policy.check(rg.Subject(id="eve"), {"dept": "hr"}).released is eve_reads_hr
    assert policy.check(rg.Subject(id="alice"), {"dept": "eng"}).released


def test_a_rule_behind_a_byte_order_mark_is_refused(tmp_path: Path) -> None:
    """Casbin reads a BOM as part of the first line and ignores that line: a rule there
    would be silently dropped, so ragguard refuses the file and says why."""
    policy_bytes = b"\xef\xbb\xbfp, eve, hr, read\np, alice, eng, read\n"
    _same_as_casbin(_MODEL_BYTES, policy_bytes, tmp_path)
    with pytest.raises(rg.PolicyLoadError, match="byte order mark"):
        rg.Policy.from_casbin(tmp_path / "model.conf", tmp_path / "policy.csv")


@pytest.mark.parametrize(
    ("model_bytes", "policy_bytes"),
    [
        (_MODEL_BYTES, b"p, alice, eng, read\np, \xe9ve, hr, read\n"),
        (_MODEL_BYTES, b"# caf\xe9\np, alice, eng, read\n"),
        (_MODEL_BYTES, b"p, alice, eng, read\n\xff\xfe"),
        (_MODEL_BYTES.replace(b"[matchers]", b"# r\xe9gles\n[matchers]"), b"p, alice, eng, read\n"),
    ],
)
def test_a_file_that_is_not_utf8_raises_policy_load_error(
    tmp_path: Path, model_bytes: bytes, policy_bytes: bytes
) -> None:
    """Regression: a non-UTF-8 byte raised a raw UnicodeDecodeError (Casbin fails too)."""
    _same_as_casbin(model_bytes, policy_bytes, tmp_path)
    with pytest.raises(rg.PolicyLoadError, match="not UTF-8"):
        rg.Policy.from_casbin(tmp_path / "model.conf", tmp_path / "policy.csv")


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_model_file_line_endings_are_read_as_casbin_reads_them(
    tmp_path: Path, newline: bytes
) -> None:
    """pycasbin opens the model in text mode (universal newlines): CRLF and CR end lines."""
    model_bytes = _MODEL_BYTES.replace(b"\n", newline)
    _same_as_casbin(model_bytes, b"p, alice, eng, read\r\ng, bob, alice\n", tmp_path)
    policy = rg.Policy.from_casbin(tmp_path / "model.conf", tmp_path / "policy.csv")
    assert policy.check(rg.Subject(id="bob"), {"dept": "eng"}).released


def test_reload_reads_the_bytes_as_casbin_does(tmp_path: Path) -> None:
    """``reload()`` reads the files again the same way: a CR inside a comment stays a comment."""
    model_path, policy_path = tmp_path / "model.conf", tmp_path / "policy.csv"
    model_path.write_bytes(_MODEL_BYTES)
    policy_path.write_bytes(b"p, alice, eng, read\np, eve, hr, read\n")
    policy = rg.Policy.from_casbin(model_path, policy_path)
    eve = rg.Subject(id="eve")
    assert policy.check(eve, {"dept": "hr"}).released
    policy_path.write_bytes(b"p, alice, eng, read\n# revoked:\rp, eve, hr, read\n")
    assert policy.reload()
    assert not policy.check(eve, {"dept": "hr"}).released
    policy_path.write_bytes(b"p, alice, eng, read\np, eve, hr, read\n\x80")
    with pytest.raises(rg.PolicyLoadError, match="not UTF-8"):
        policy.reload()
    assert not policy.check(eve, {"dept": "hr"}).released  # the old policy stays in force


_byte_piece = st.sampled_from(
    [
        b"p, alice, eng, read",
        b"p, eve, hr, read",
        b"p, staff, legal, read",
        b"g, bob, staff",
        b"g, mallory, staff",
        b"# comment",
        b"#",
        b"\r",
        b"\r\n",
        b"\n",
        b" ",
        b"\t",
        b",",
        b"\xef\xbb\xbf",
        b"\xe9",
        b'"',
    ]
)


def test_policy_file_bytes_decide_as_casbin(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Any mix of CR, CRLF, BOM, whitespace, quotes and stray bytes: ragguard decides as
    casbin.enforce on the same file, or refuses it (never a raw exception)."""
    tmp = tmp_path_factory.mktemp("bytes")

    @conformance_settings(300)
    @given(pieces=st.lists(_byte_piece, min_size=1, max_size=12))
    def same_decisions(pieces: list[bytes]) -> None:
        _same_as_casbin(_MODEL_BYTES, b"".join(pieces), tmp)

    same_decisions()
