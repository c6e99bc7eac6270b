"""The retrieval gateway: one HTTP API and one MCP server, the caller from a signed token.

Writes a gateway configuration file, starts `ragguard serve`'s application on a free
loopback port, and plays both sides: a stand-in identity provider that signs ES256
tokens for alice and bob, and the clients that use them over HTTP (httpx) and over MCP
(the official SDK's streamable-HTTP client). A token for the wrong audience is refused
with 401 before anything is searched. Needs `pip install 'ragguard[gateway]'`.

    python examples/gateway_http_and_mcp.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

import ragguard as rg
from ragguard.gateway import create_app, load_config
from ragguard.testing import HashEmbedder, sample_corpus

DEMO = Path(rg.__file__).parent / "_demo"  # the demo's model.conf and policy.csv
QUESTION = "What is the codename of the acquisition we are planning, and the offer price?"
CONFIG = """
[policy]
model = "{model}"
policy = "{policy}"

[store]
kind = "edge"
path = "shard"

[embedder]
class = "ragguard.testing:HashEmbedder"
options = {{ dim = 384 }}

[identity]
issuer = "https://login.example.test"
audience = "ragguard-example"
algorithms = ["ES256"]
keys = [{{ kid = "example-1", pem_env = "EXAMPLE_GATEWAY_PUBLIC_KEY" }}]

[identity.subject]
id_claim = "sub"
attributes = {{ dept = "department", clearance = "clearance" }}
required_attributes = ["clearance"]

[audit]
path = "audit/gateway.jsonl"
"""


class IdentityProvider:
    """Stands in for the real one: signs short-lived ES256 tokens."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def token(self, user: str, department: str, clearance: int, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://login.example.test",
            "aud": audience,
            "sub": user,
            "iat": now,
            "exp": now + 300,
            "azp": "example-agent",
            "department": department,
            "clearance": clearance,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "example-1"})


def build_shard(path: Path) -> None:
    embedder = HashEmbedder(dim=384)
    documents = sample_corpus()
    vectors = embedder.embed_documents([doc.text for doc in documents])
    with rg.EdgeStore.create(path, dim=384) as store:
        store.upsert(doc.to_chunk(vector) for doc, vector in zip(documents, vectors, strict=True))
        store.optimize()


def serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def http_search(base_url: str, token: str) -> None:
    response = httpx.post(
        f"{base_url}/v1/search",
        json={"query": QUESTION, "k": 3, "subject": "admin"},  # "subject" is ignored
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    print(f"== HTTP as {body['subject_id']} (decision {body['decision_id'][:8]}…)")
    for hit in body["hits"]:
        m = hit["metadata"]
        print(f"  {hit['score']:.2f} [{m['tenant']}/{m['dept']}/L{m['level']}] {m['title']}")
        print(f"       released by {hit['rule']}")
    if not body["hits"]:
        print("  (nothing this user may read matches)")


async def mcp_search(base_url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client,
    ):
        tools = (await client.list_tools()).tools
        print(f"== MCP tools: {', '.join(sorted(tool.name for tool in tools))}")
        result = await client.call_tool("search_documents", {"query": QUESTION, "k": 3})
        payload = result.structured_content or {}
        for item in payload.get("results", []):
            citation = item["citation"]
            print(f"  cite {citation['chunk_id'][:8]}… {item['metadata']['title']}")
            print(f"       rule: {citation['rule']}")


def main() -> None:
    idp = IdentityProvider()
    os.environ["EXAMPLE_GATEWAY_PUBLIC_KEY"] = idp.public_pem()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_shard(root / "shard")
        config_file = root / "gateway.toml"
        config_file.write_text(
            CONFIG.format(model=DEMO / "model.conf", policy=DEMO / "policy.csv"), encoding="utf-8"
        )
        server, thread, base_url = serve(create_app(load_config(config_file)))
        try:
            alice = idp.token("alice", "engineering", 1, "ragguard-example")
            bob = idp.token("bob", "finance", 3, "ragguard-example")
            http_search(base_url, alice)
            http_search(base_url, bob)
            stray = idp.token("bob", "finance", 3, "another-service")
            refused = httpx.post(
                f"{base_url}/v1/search",
                json={"query": QUESTION},
                headers={"Authorization": f"Bearer {stray}"},
                timeout=30,
            )
            print(f"== a token for another audience: {refused.status_code}")
            print(f"  WWW-Authenticate: {refused.headers['www-authenticate']}")
            asyncio.run(mcp_search(base_url, bob))
        finally:
            server.should_exit = True
            thread.join(10)
        records = (root / "audit" / "gateway.jsonl").read_text(encoding="utf-8").splitlines()
        print(f"{len(records)} retrievals recorded in audit/gateway.jsonl")


if __name__ == "__main__":
    main()
