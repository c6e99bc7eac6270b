"""A LangChain RAG chain where two users ask the same question and get different answers.

The chain is ordinary LCEL (``retriever | format_docs | prompt | llm``); the only ragguard
parts are the ``GuardedRetriever`` and the subject passed in the call's config. The chat
model is langchain-core's ``ParrotFakeChatModel``, which answers with the prompt it was
given: that makes visible exactly which chunks each user's answer is grounded in.
No network, no model download.

    python examples/langchain_rag_chain.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnablePassthrough

import ragguard as rg
from ragguard.testing import HashEmbedder, sample_corpus
from ragguard_langchain import GuardedRetriever

DEMO = Path(rg.__file__).parent / "_demo"  # the demo's policy: roles per tenant, clearances
QUESTION = "What is the codename of the acquisition we are planning, and what is the offer price?"

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer only from the context. Cite the sources in brackets."),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


def format_docs(docs: list[Document]) -> str:
    """Each chunk with its source, so the answer can cite it."""
    return "\n".join(f"[{d.metadata['title']}] {d.page_content}" for d in docs) or "(nothing)"


def main() -> None:
    embedder = HashEmbedder(dim=384)
    policy = rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv")
    with (
        tempfile.TemporaryDirectory() as tmp,
        rg.EdgeStore.create(Path(tmp) / "shard", dim=384, distance="cosine") as store,
    ):
        key = b"example-signing-key-32-bytes-lon"
        signer = rg.Signer(key=key, key_id="example")
        rg.Ingestor(store, signer=signer, embeddings=embedder, progress=False).ingest(
            sample_corpus()
        )
        store.optimize()
        guard = rg.Guard(policy, store, provenance=rg.ProvenanceCheck(keys={"example": key}))

        retriever = GuardedRetriever(guard=guard, embeddings=embedder, k=3)
        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | PROMPT
            | ParrotFakeChatModel()
            | StrOutputParser()
        )

        users = [
            rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1}),
            rg.Subject(id="bob", attributes={"dept": "finance", "clearance": 3}),
        ]
        print(f"Question: {QUESTION}\n")
        for user in users:
            config: RunnableConfig = {"configurable": {"ragguard_subject": user}}
            sources = [d.metadata["title"] for d in retriever.invoke(QUESTION, config=config)]
            answer = chain.invoke(QUESTION, config=config)
            print(
                f"== {user.id} ({user.attributes['dept']}, clearance {user.attributes['clearance']})"
            )
            print("   grounded in:", "; ".join(sources))
            print("   the model saw:", answer.split("Context:\n", 1)[1].split("\n")[0][:110], "...")
            print()


if __name__ == "__main__":
    main()
