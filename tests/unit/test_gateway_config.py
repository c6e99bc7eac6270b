"""The gateway's configuration file: validation that fails closed, and lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ragguard.exceptions import ConfigError
from ragguard.gateway import load_config, parse_config

BASE: dict[str, dict[str, object]] = {
    "policy": {"model": "model.conf", "policy": "policy.csv"},
    "store": {"kind": "edge", "path": "shard"},
    "identity": {
        "issuer": "https://issuer.test",
        "audience": "ragguard",
        "jwks_url": "https://issuer.test/jwks.json",
    },
}


def _with(section: str, **values: object) -> dict[str, object]:
    config: dict[str, dict[str, object]] = {key: dict(value) for key, value in BASE.items()}
    config[section] = {**config.get(section, {}), **values}
    return dict(config)


def test_a_minimal_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    """Relative paths are resolved against the file's directory; absolute ones kept."""
    (tmp_path / "gateway.toml").write_text(
        f'[policy]\nmodel = "model.conf"\npolicy = "{tmp_path / "abs" / "policy.csv"}"\n'
        '[store]\nkind = "edge"\npath = "shard"\n'
        '[identity]\nissuer = "https://issuer.test"\naudience = "ragguard"\n'
        'jwks_url = "https://issuer.test/jwks.json"\n'
        '[identity.subject]\nattributes = { roles = "groups", clearance = "clearance" }\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "gateway.toml")
    assert config.policy.model == tmp_path.resolve() / "model.conf"
    assert config.policy.policy == tmp_path / "abs" / "policy.csv"  # absolute: kept
    assert config.store.path == tmp_path.resolve() / "shard"
    assert config.identity is not None
    assert config.identity.subject.attributes == {"roles": "groups", "clearance": "clearance"}
    assert config.identity.algorithms == ["RS256", "ES256"]


@pytest.mark.parametrize("algorithm", ["none", "HS256", "HS512", "rs256"])
def test_symmetric_and_none_algorithms_are_refused(algorithm: str) -> None:
    """Only asymmetric algorithms may be allowed: no 'none', no HMAC key confusion."""
    with pytest.raises(ConfigError, match=r"identity\.algorithms"):
        parse_config(_with("identity", algorithms=["RS256", algorithm]))


@pytest.mark.parametrize(
    ("section", "values", "where"),
    [
        ("identity", {"audence": "typo"}, "identity.audence"),
        ("identity", {"leeway_s": 3600}, "identity.leeway_s"),
        ("identity", {"required_claims": ["sub"]}, "exp"),
        ("identity", {"keys": [{"kid": "k1", "pem_env": "PEM"}]}, "exactly one of jwks_url"),
        ("store", {"kind": "qdrant"}, "url and collection"),
        ("limits", {"max_k": 0}, "limits.max_k"),
        ("provenance", {"mode": "require"}, "keys_env"),
        ("store", {"kind": "replica", "path": None}, "snapshots"),
        ("store", {"kind": "replica", "snapshots": "s", "refresh_s": -1}, "store.refresh_s"),
        ("budget", {"max_chunks": 5, "backend": "redis"}, "redis_url_env"),
        ("budget", {"max_chunks": 5, "backend": "memcached"}, "budget.backend"),
    ],
)
def test_unusable_settings_name_the_key(
    section: str, values: dict[str, object], where: str
) -> None:
    """A typo or an unsafe value is an error that names the key, never ignored."""
    with pytest.raises(ConfigError, match=where):
        parse_config(_with(section, **values))


def test_a_missing_secret_names_the_variable_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets come from the environment; an unset variable is named in the error."""
    from ragguard.gateway._config import secret_from_env

    monkeypatch.delenv("RAGGUARD_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError, match="RAGGUARD_TEST_UNSET"):
        secret_from_env("RAGGUARD_TEST_UNSET", "[audit] key_env")


def test_importing_ragguard_does_not_import_the_web_stack() -> None:
    """`import ragguard` and the gateway's config model need no web or JWT packages."""
    code = (
        "import sys, ragguard, ragguard.gateway, ragguard._cli\n"
        "ragguard._cli.build_parser()\n"
        "heavy = [m for m in ('starlette', 'uvicorn', 'jwt', 'mcp') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serve_refuses_unusable_arguments(tmp_path: Path) -> None:
    """`ragguard serve`: a missing file is a usage error, a bad file names the key."""
    from ragguard._cli import EXIT_FAILED, EXIT_USAGE, main

    assert main(["serve", "--config", str(tmp_path / "missing.toml")]) == EXIT_USAGE
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[policy]\nmodel = "m"\npolicy = "p"\n[store]\nkind = "edge"\n', encoding="utf-8"
    )
    assert main(["serve", "--config", str(bad)]) == EXIT_FAILED
    edge = tmp_path / "edge.toml"
    edge.write_text(
        '[policy]\nmodel = "m"\npolicy = "p"\n[store]\nkind = "edge"\npath = "s"\n',
        encoding="utf-8",
    )
    assert main(["serve", "--config", str(edge), "--workers", "2"]) == EXIT_USAGE


def test_a_redis_budget_without_its_url_variable_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """backend = "redis" reads the URL from the named variable; unset: ConfigError."""
    from ragguard.gateway._factory import build_guard

    monkeypatch.delenv("RAGGUARD_TEST_REDIS_URL", raising=False)
    demo = Path(__file__).resolve().parents[2] / "ragguard" / "_demo"
    config = parse_config(
        {
            "policy": {"model": str(demo / "model.conf"), "policy": str(demo / "policy.csv")},
            "store": {"kind": "edge", "path": str(tmp_path / "missing")},
            "budget": {
                "max_chunks": 5,
                "backend": "redis",
                "redis_url_env": "RAGGUARD_TEST_REDIS_URL",
            },
        }
    )
    with pytest.raises(ConfigError, match="RAGGUARD_TEST_REDIS_URL"):
        build_guard(config)
