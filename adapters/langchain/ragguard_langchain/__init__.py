"""LangChain integration for ragguard.

:class:`GuardedRetriever` is a drop-in ``BaseRetriever`` that runs every query through a
:class:`ragguard.Guard`: the policy filter is pushed into the vector store, every hit is
re-checked, and no call is ever unfiltered::

    from ragguard_langchain import GuardedRetriever

    retriever = GuardedRetriever(guard=guard, embeddings=embeddings, k=4)
    chain = retriever | format_docs | prompt | llm
    chain.invoke(question, config={"configurable": {"ragguard_subject": alice}})
"""

from ragguard_langchain.embeddings import HashEmbeddings
from ragguard_langchain.retriever import (
    SUBJECT_CONFIG_KEY,
    GuardedRetriever,
    QueryEmbedder,
    document_from_hit,
)
from ragguard_langchain.vectorstores import PostFilterStore, PostFilterWarning

__all__ = [
    "SUBJECT_CONFIG_KEY",
    "GuardedRetriever",
    "HashEmbeddings",
    "PostFilterStore",
    "PostFilterWarning",
    "QueryEmbedder",
    "document_from_hit",
]
