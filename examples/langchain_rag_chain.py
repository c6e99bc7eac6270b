"""A LangChain RAG chain where two users ask the same question and get different answers.

The chain is ordinary LCEL (``retriever | format_docs | prompt | llm``) over a
langchain-qdrant collection made the default way (``QdrantVectorStore.from_documents``);
the only ragguard parts are ``GuardedRetriever.from_vectorstore`` (the policy's filter is
pushed into that same collection, no migration), the chunks' provenance signatures and
the subject passed in the call's config. ``HashEmbeddings`` is ragguard's deterministic
test embedder as a LangChain ``Embeddings``: swap in your model. The chat model is
langchain-core's ``ParrotFakeChatModel``, which answers with the prompt it was given:
that makes visible exactly which chunks each user's answer is grounded in. No network,
no model download.

    python examples/langchain_rag_chain.py
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnablePassthrough
from langchain_qdrant import QdrantVectorStore

import ragguard as rg
from ragguard.testing import sample_corpus
from ragguard_langchain import GuardedRetriever, HashEmbeddings

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


def signed_documents(signer: rg.Signer) -> list[Document]:
    """The demo corpus as LangChain Documents, each signed before it is stored."""
    documents = []
    for doc in sample_corpus():
        metadata = signer.sign(
            doc.text,
            doc.metadata,
            source=str(doc.metadata["source"]),
            doc_id=str(doc.metadata["doc_id"]),
            chunk_index=int(doc.metadata["chunk_index"]),
        )
        documents.append(Document(id=doc.id, page_content=doc.text, metadata=metadata))
    return documents


def main() -> None:
    policy = rg.Policy.from_casbin(DEMO / "model.conf", DEMO / "policy.csv")
    key = b"example-signing-key-32-bytes-lon"
    signer = rg.Signer(key=key, key_id="example")
    # A langchain-qdrant collection made the default way (unnamed vector, LangChain payload).
    vectorstore = QdrantVectorStore.from_documents(
        signed_documents(signer),
        HashEmbeddings(dim=384),
        location=":memory:",
        collection_name="kb",
    )
    try:
        retriever = GuardedRetriever.from_vectorstore(
            vectorstore, policy, k=3, provenance=rg.ProvenanceCheck(keys={"example": key})
        )
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
    finally:
        vectorstore.client.close()


if __name__ == "__main__":
    main()
