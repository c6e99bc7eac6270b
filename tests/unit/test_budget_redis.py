"""RedisBudgetBackend against a real redis-server: atomic across processes, fails closed."""

from __future__ import annotations

import multiprocessing
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ragguard as rg
from ragguard.exceptions import BudgetError, BudgetExceededError

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not on PATH (Debian: apt-get install redis-server; .ci/run does)",
)
redis = pytest.importorskip("redis", reason="the redis client is in the dev extra")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server on a free loopback port, data in a temp directory."""

    def __init__(self, directory: Path) -> None:
        assert REDIS_SERVER is not None
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.skip(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer(tmp_path_factory.mktemp("redis"))
    yield running
    running.stop()


@pytest.fixture
def backend(server: RedisServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    made = rg.RedisBudgetBackend.from_url(server.url, prefix=f"test:{request.node.name}:")
    yield made
    made.client.close()


def test_counts_within_the_window_and_refuses_beyond(backend: Any) -> None:
    assert backend.scope == "shared"
    assert backend.consume("alice", 3, 0.0, limit=5, window_seconds=60) is True
    assert backend.consume("alice", 3, 0.0, limit=5, window_seconds=60) is False
    assert backend.consume("alice", 2, 0.0, limit=5, window_seconds=60) is True
    assert backend.consume("alice", 1, 0.0, limit=5, window_seconds=60) is False
    assert backend.consume("bob", 5, 0.0, limit=5, window_seconds=60) is True
    assert backend.used("alice", window_seconds=60) == 5
    assert backend.consume("alice", 0, 0.0, limit=5, window_seconds=60) is True


def test_client_clock_slides_the_window(server: RedisServer) -> None:
    backend = rg.RedisBudgetBackend.from_url(server.url, prefix="slide:", server_time=False)
    assert backend.consume("alice", 4, 100.0, limit=5, window_seconds=10) is True
    assert backend.consume("alice", 2, 105.0, limit=5, window_seconds=10) is False
    assert backend.used("alice", 105.0, window_seconds=10) == 4
    # (now - window, now]: the release at 100 leaves the window at exactly 110
    assert backend.consume("alice", 2, 110.0, limit=5, window_seconds=10) is True
    assert backend.used("alice", 110.0, window_seconds=10) == 2
    backend.client.close()


def test_server_clock_expires_entries(server: RedisServer) -> None:
    backend = rg.RedisBudgetBackend.from_url(server.url, prefix="expire:")
    assert backend.consume("alice", 5, 0.0, limit=5, window_seconds=0.3) is True
    assert backend.consume("alice", 1, 0.0, limit=5, window_seconds=0.3) is False
    time.sleep(0.4)
    assert backend.consume("alice", 5, 0.0, limit=5, window_seconds=0.3) is True
    backend.client.close()


def test_release_budget_over_redis(backend: Any) -> None:
    budget = rg.ReleaseBudget(max_chunks=4, window_seconds=60, backend=backend)
    budget.charge("alice", 3)
    with pytest.raises(BudgetExceededError):
        budget.charge("alice", 2)
    budget.charge("alice", 1)
    assert "RedisBudgetBackend" in repr(budget)


def _release_many(url: str, rounds: int, queue: multiprocessing.Queue[Any]) -> None:
    backend = rg.RedisBudgetBackend.from_url(url, prefix="race:")
    budget = rg.ReleaseBudget(max_chunks=150, window_seconds=3600, backend=backend)
    released = 0
    for _ in range(rounds):
        try:
            budget.charge("alice", 3)
            released += 3
        except BudgetExceededError:
            pass
    queue.put(released)


def test_concurrent_processes_never_exceed_the_budget(server: RedisServer) -> None:
    """4 processes x 100 charges of 3 against one budget of 150: exactly 150 released."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[Any] = context.Queue()
    workers = [
        context.Process(target=_release_many, args=(server.url, 100, queue)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    totals = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sum(totals) == 150, totals
    check = rg.RedisBudgetBackend.from_url(server.url, prefix="race:")
    assert check.used("alice", window_seconds=3600) == 150
    check.client.close()


def test_redis_down_fails_closed(tmp_path: Path) -> None:
    """No server: the charge raises BudgetError (not 'unlimited'), the guard releases nothing."""
    port = _free_port()  # nothing listens there
    backend = rg.RedisBudgetBackend.from_url(
        f"redis://127.0.0.1:{port}/0", prefix="down:", timeout_seconds=0.5
    )
    budget = rg.ReleaseBudget(max_chunks=10, window_seconds=60, backend=backend)
    with pytest.raises(BudgetError, match="budget backend failed") as caught:
        budget.charge("alice", 1)
    assert not isinstance(caught.value, BudgetExceededError)

    store = rg.EdgeStore.create(tmp_path / "shard", dim=4)
    store.upsert([rg.Chunk(id="c1", text="one", vector=[1.0, 0.0, 0.0, 0.0], metadata={})])
    model = (
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, act\n"
        "[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.act == p.act\n"
    )
    guard = rg.Guard(rg.Policy.from_casbin(model, "p, anyone, read\n"), store, budget=budget)
    with pytest.raises(BudgetError):
        guard.search(rg.Subject(id="alice"), [1.0, 0.0, 0.0, 0.0], k=1)
    store.close()


def test_a_server_that_stops_mid_run_fails_closed(tmp_path: Path) -> None:
    running = RedisServer(tmp_path)
    backend = rg.RedisBudgetBackend.from_url(running.url, prefix="stop:", timeout_seconds=0.5)
    budget = rg.ReleaseBudget(max_chunks=10, window_seconds=60, backend=backend)
    budget.charge("alice", 1)
    running.stop()
    with pytest.raises(BudgetError):
        budget.charge("alice", 1)


def test_from_url_without_the_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"ragguard\[redis\]"):
        rg.RedisBudgetBackend.from_url("redis://127.0.0.1:1/0")
