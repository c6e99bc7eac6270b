"""LlamaIndex integration for ragguard.

:class:`GuardedRetriever` is a LlamaIndex ``BaseRetriever`` that runs every query through
a :class:`ragguard.Guard`: the policy filter is pushed into the vector store, every hit is
re-checked, and no call is ever unfiltered::

    from ragguard_llamaindex import GuardedRetriever

    retriever = GuardedRetriever(guard, embed_model=embed_model, similarity_top_k=4)
    engine = RetrieverQueryEngine.from_args(retriever.with_subject(alice), llm=llm)
"""

from ragguard_llamaindex.retriever import DECISION_KEY, GuardedRetriever, node_from_hit

__all__ = ["DECISION_KEY", "GuardedRetriever", "node_from_hit"]
