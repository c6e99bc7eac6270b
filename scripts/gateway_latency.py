#!/usr/bin/env python3
"""Measure the gateway's added latency over an in-process ``guard.search``.

Small scale, loopback only: the demo corpus (360 chunks) in an embedded shard, the demo
policy, the hash embedder, a uvicorn server on 127.0.0.1 and httpx clients with a
freshly signed ES256 token (static key). Prints p50/p99 for: in-process embed+search,
HTTP with one client, and HTTP with ``--clients`` concurrent clients (each request's
own latency)::

    python scripts/gateway_latency.py --requests 300 --clients 4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import ragguard as rg
from ragguard.gateway import create_app, parse_config
from ragguard.testing import HashEmbedder, sample_corpus

DEMO = Path(rg.__file__).parent / "_demo"
QUESTIONS = [
    "How do I restart a service and roll back a bad deploy when I am on call?",
    "What is the codename of the acquisition we are planning?",
    "What are the salary bands for senior software engineers?",
    "Was revenue from multi-year deals recognised correctly this quarter?",
]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {p50 * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms   (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    os.environ["RAGGUARD_BENCH_PEM"] = pem.decode()
    embedder = HashEmbedder(dim=384)
    documents = sample_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        store = rg.EdgeStore.create(Path(tmp) / "shard", dim=384)
        vectors = embedder.embed_documents([d.text for d in documents])
        store.upsert(d.to_chunk(v) for d, v in zip(documents, vectors, strict=True))
        store.optimize()
        guard = rg.Guard(rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv"), store)
        config = parse_config(
            {
                "policy": {"model": str(DEMO / "model.conf"), "policy": str(DEMO / "policy.csv")},
                "store": {"kind": "edge", "path": "/unused"},
                "identity": {
                    "issuer": "https://issuer.bench",
                    "audience": "bench",
                    "algorithms": ["ES256"],
                    "keys": [{"kid": "k1", "pem_env": "RAGGUARD_BENCH_PEM"}],
                    "subject": {"attributes": {"dept": "dept", "clearance": "clearance"}},
                },
            }
        )
        alice = rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1})
        now = int(time.time())
        token = jwt.encode(
            {
                "iss": "https://issuer.bench",
                "aud": "bench",
                "sub": "alice",
                "iat": now,
                "exp": now + 3600,
                "dept": "engineering",
                "clearance": 1,
            },
            key,
            algorithm="ES256",
            headers={"kid": "k1"},
        )
        # In process: what the gateway does per request, without HTTP and identity.
        for q in QUESTIONS:
            guard.search(alice, embedder.embed_query(q), k=5)
        local: list[float] = []
        for i in range(args.requests):
            started = time.perf_counter()
            guard.search(alice, embedder.embed_query(QUESTIONS[i % len(QUESTIONS)]), k=5)
            local.append(time.perf_counter() - started)

        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config, guard=guard, embedder=embedder),
                host="127.0.0.1",
                port=0,
                log_level="warning",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1/search"
        headers = {"Authorization": f"Bearer {token}"}

        def run(count: int, offset: int) -> list[float]:
            samples: list[float] = []
            with httpx.Client(timeout=30) as client:
                for i in range(count):
                    body = {"query": QUESTIONS[(i + offset) % len(QUESTIONS)], "k": 5}
                    started = time.perf_counter()
                    response = client.post(url, json=body, headers=headers)
                    samples.append(time.perf_counter() - started)
                    response.raise_for_status()
            return samples

        run(20, 0)  # warm-up
        single = run(args.requests, 0)
        with ThreadPoolExecutor(args.clients) as pool:
            per_client = max(1, args.requests // args.clients)
            concurrent = [
                s
                for part in pool.map(lambda c: run(per_client, c), range(args.clients))
                for s in part
            ]
        server.should_exit = True
        thread.join(10)
        store.close()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"in-process guard.search (embed + search, k=5): {percentiles(local)}")
    print(f"gateway, 1 client:                              {percentiles(single)}")
    print(
        f"gateway, {args.clients} concurrent clients:                   {percentiles(concurrent)}"
    )


if __name__ == "__main__":
    main()
