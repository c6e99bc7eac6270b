"""``ragguard serve --workers 2`` for real: two uvicorn worker processes on a loopback
port, each serving its own EdgeStore read replica of snapshots the test publishes, a
shared hash-chained audit log, and (when ``redis-server`` is installed) one release
budget kept in a private Redis server.

The test process holds the primary shard and computes the expected answers with an
in-process guard. Each request goes over a fresh connection whose first call is
``/readyz``, which names the worker's replica slot: that is how the test knows which
worker answered the search that follows on the same connection.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

import ragguard as rg
from ragguard.audit import read_audit_records, verify_audit_log
from ragguard.testing import HashEmbedder, sample_corpus

DEMO = Path(rg.__file__).parent / "_demo"
ISSUER = "https://issuer.test"
AUDIENCE = "ragguard-workers-test"
USERS = {
    "alice": {"dept": "engineering", "clearance": 1},
    "bob": {"dept": "finance", "clearance": 3},
}
QUESTION = "How do I restart a service and roll back a bad deploy when I am on call?"
REDIS_SERVER = shutil.which("redis-server")
START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Deployment:
    """A primary shard with a published snapshot, and the files the gateway reads."""

    root: Path
    primary: rg.EdgeStore
    snapshots: Path
    version: str
    key: RSAPrivateKey
    embedder: HashEmbedder

    def config(self, *, refresh_s: float, budget: str = "") -> Path:
        path = self.root / f"gateway-{time.monotonic_ns()}.toml"
        path.write_text(
            f"""
[policy]
model = "{DEMO / "model.conf"}"
policy = "{DEMO / "policy.csv"}"

[store]
kind = "replica"
snapshots = "{self.snapshots}"
replicas = "{self.root / "replicas"}"
refresh_s = {refresh_s}

[embedder]
class = "ragguard.testing:HashEmbedder"
options = {{ dim = 384 }}

[audit]
path = "{self.root / "audit.jsonl"}"

[identity]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
algorithms = ["RS256"]

[[identity.keys]]
kid = "rsa-1"
pem_file = "{self.root / "rsa-1.pem"}"

[identity.subject]
attributes = {{ dept = "dept", clearance = "clearance" }}

[mcp]
enabled = false
{budget}
""",
            encoding="utf-8",
        )
        return path

    def token(self, user: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user,
            "iat": now,
            "exp": now + 600,
            "azp": f"client-{user}",
            **USERS[user],
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "rsa-1"})

    def expected(self, user: str, k: int) -> list[str]:
        """What the in-process guard over the primary releases to ``user`` (with the
        gateway's default screens)."""
        policy = rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv")
        screens: list[rg.Screen] = [
            rg.PromptInjectionScreen(action="flag"),
            rg.SecretsScreen(action="deny"),
        ]
        guard = rg.Guard(policy, self.primary, screens=screens)
        subject = rg.Subject(id=user, attributes=USERS[user])
        return [hit.id for hit in guard.search(subject, self.embedder.embed_query(QUESTION), k)]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    embedder = HashEmbedder(dim=384)
    documents = sample_corpus()
    primary = rg.EdgeStore.create(tmp_path / "primary", dim=384)
    vectors = embedder.embed_documents([d.text for d in documents])
    primary.upsert(d.to_chunk(v) for d, v in zip(documents, vectors, strict=True))
    snapshots = tmp_path / "snapshots"
    version = primary.snapshot(snapshots)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa-1.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    yield Deployment(tmp_path, primary, snapshots, version, key, embedder)
    primary.close()


class Served:
    """``python -m ragguard serve --workers 2`` on a free loopback port."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.with_suffix(".log")
        with open(self.log, "wb") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ragguard",
                    "serve",
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "2",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        try:
            self._wait_for_both_workers()
        except BaseException:
            self.stop()
            raise

    def _wait_for_both_workers(self) -> None:
        seen: set[str] = set()
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(seen) < 2:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"both workers did not become ready (saw {sorted(seen)}): "
                    + self.log.read_text(errors="replace")[-3000:]
                )
            try:
                seen.add(self.ready()["replica"])
            except httpx.HTTPError:
                time.sleep(0.2)

    def ready(self, client: httpx.Client | None = None) -> dict[str, Any]:
        """``/readyz`` (on ``client``'s connection, or a fresh one)."""
        if client is None:
            with httpx.Client(base_url=self.url, timeout=30) as fresh:
                return self.ready(fresh)
        response = client.get("/readyz")
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def search(self, token: str, k: int) -> tuple[str, httpx.Response]:
        """One search on a fresh connection: the worker's replica slot and the response."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            slot = self.ready(client)["replica"]
            response = client.post(
                "/v1/search",
                json={"query": QUESTION, "k": k},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert self.ready(client)["replica"] == slot  # the same connection, worker
            return slot, response

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Served] = []

    def start(config: Path, env: dict[str, str] | None = None) -> Served:
        served = Served(config, env)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def test_two_workers_on_replicas_answer_alike_and_report_the_data_version(
    deployment: Deployment, serve: Any
) -> None:
    """Both workers release exactly the in-process guard's results for each token,
    report the snapshot they serve, pick up a newly published one by the refresh
    timer, and append to one audit chain that names the client and the version."""
    served = serve(deployment.config(refresh_s=0.5))
    expected = {user: deployment.expected(user, 6) for user in USERS}
    tokens = {user: deployment.token(user) for user in USERS}
    answered: dict[str, set[str]] = {user: set() for user in USERS}
    for attempt in range(40):
        user = list(USERS)[attempt % len(USERS)]
        slot, response = served.search(tokens[user], 6)
        assert response.status_code == 200, response.text
        body = response.json()
        assert [hit["id"] for hit in body["hits"]] == expected[user], (user, slot)
        assert body["data_version"] == deployment.version
        answered[user].add(slot)
        if all(len(slots) == 2 for slots in answered.values()):
            break
    assert answered == {user: {"w0", "w1"} for user in USERS}

    # A new snapshot with a chunk alice may read: both workers move to it.
    runbook = next(
        d
        for d in sample_corpus()
        if d.metadata["tenant"] == "acme"
        and d.metadata["dept"] == "engineering"
        and d.metadata["level"] == 1
    )
    fresh_id = "00000000-0000-4000-8000-0000000f4e54"
    deployment.primary.upsert(
        [
            rg.Chunk(
                text=QUESTION,
                metadata={**runbook.metadata, "title": "Restart and roll back"},
                vector=deployment.embedder.embed_query(QUESTION),
                id=fresh_id,
            )
        ]
    )
    second = deployment.primary.snapshot(deployment.snapshots)
    assert second != deployment.version
    moved: set[str] = set()
    deadline = time.monotonic() + 60
    while moved != {"w0", "w1"}:
        assert time.monotonic() < deadline, f"only {sorted(moved)} refreshed to {second}"
        slot, response = served.search(tokens["alice"], 6)
        body = response.json()
        if body["data_version"] == second:
            assert body["hits"][0]["id"] == fresh_id
            moved.add(slot)
        else:
            assert body["data_version"] == deployment.version
            time.sleep(0.1)
    assert deployment.expected("alice", 6)[0] == fresh_id
    served.stop()

    log = deployment.root / "audit.jsonl"
    assert verify_audit_log(log)
    records = [entry.record for entry in read_audit_records(log)]
    assert {r.client_id for r in records} == {"client-alice", "client-bob"}
    assert {r.data_version for r in records} == {deployment.version, second}
    assert all(r.client_name is None for r in records)  # HTTP: no MCP client name
    verified = subprocess.run(
        [sys.executable, "-m", "ragguard", "audit", "verify", str(log)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not on PATH (Debian: apt-get install redis-server; .ci/run does)",
)
def test_two_workers_share_one_release_budget_in_redis(
    deployment: Deployment, serve: Any, tmp_path: Path
) -> None:
    """max_chunks = 10 across both workers: searches releasing 3 chunks each succeed on
    either worker until the shared count would pass 10, then every worker answers 429.
    (With one in-process count per worker the two would release up to 18.)"""
    redis = pytest.importorskip("redis", reason="the redis client is in the dev extra")
    assert REDIS_SERVER is not None
    port = _free_port()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    arguments = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir)]
    server = subprocess.Popen(
        [REDIS_SERVER, *arguments, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert server.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        budget = """
[budget]
max_chunks = 10
window_s = 3600
backend = "redis"
redis_url_env = "TEST_RAGGUARD_REDIS_URL"
redis_prefix = "test:budget:"
"""
        served = serve(
            deployment.config(refresh_s=0, budget=budget), {"TEST_RAGGUARD_REDIS_URL": url}
        )
        assert len(deployment.expected("alice", 3)) == 3
        token = deployment.token("alice")
        released = 0
        statuses: dict[str, list[int]] = {"w0": [], "w1": []}
        for _ in range(60):
            slot, response = served.search(token, 3)
            statuses[slot].append(response.status_code)
            if response.status_code == 200:
                released += len(response.json()["hits"])
            else:
                assert response.status_code == 429, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
            if all(429 in codes for codes in statuses.values()):
                break
        assert released == 9  # three searches of 3; a fourth would make 12 > 10
        assert all(429 in codes for codes in statuses.values()), statuses
        assert sum(codes.count(200) for codes in statuses.values()) == 3
        backend = rg.RedisBudgetBackend(client, prefix="test:budget:")
        assert backend.used("alice", window_seconds=3600) == 9
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
