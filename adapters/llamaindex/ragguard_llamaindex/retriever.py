"""``GuardedRetriever``: a LlamaIndex retriever that only returns what the asker may read.

::

    from ragguard_llamaindex import GuardedRetriever

    retriever = GuardedRetriever(guard, embed_model=embed_model, similarity_top_k=4)
    nodes = retriever.with_subject(alice).retrieve("how do I roll back a deploy?")
    nodes = retriever.retrieve_for(alice, "how do I roll back a deploy?")  # the same

Every call runs one guarded search (:meth:`ragguard.Guard.search`) for exactly one
subject: a retriever bound to one (``GuardedRetriever(..., subject=alice)`` or
``retriever.with_subject(alice)``, a new retriever; the original is untouched, so one
shared retriever serves every request), or ``retrieve_for(subject, query)`` per call.
LlamaIndex's ``retrieve(query)`` has no place for a caller's identity, so an unbound
retriever's ``retrieve`` raises :class:`ragguard.SubjectError` before anything is
searched: there is no unfiltered search.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, QueryType, TextNode

from ragguard import Guard, Hit, Policy, QdrantStore, StoreError, Subject, SubjectError

__all__ = ["DECISION_KEY", "GuardedRetriever", "node_from_hit"]

DECISION_KEY = "ragguard"
"""The node metadata key holding the guard's decision and the chunk's provenance."""


class GuardedRetriever(BaseRetriever):
    """A LlamaIndex ``BaseRetriever`` over a :class:`ragguard.Guard`.

    Returns ``NodeWithScore`` s whose ``TextNode`` has the chunk id, text and metadata,
    and the decision under ``metadata["ragguard"]`` (see :func:`node_from_hit`; the key is
    excluded from what LlamaIndex shows the LLM and the embedding model).

    ``embed_model`` embeds the query: a LlamaIndex embedding (``get_query_embedding``,
    ``aget_query_embedding``) or a LangChain-style one (``embed_query``,
    ``aembed_query``, e.g. ``ragguard.testing.HashEmbedder``). A ``QueryBundle`` that
    carries its own ``embedding`` is searched with it. The retriever holds no per-call
    state: share one across threads and tasks.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        embed_model: Any,
        similarity_top_k: int = 4,
        subject: Subject | Mapping[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"guard must be a ragguard.Guard, got {type(guard).__name__}")
        if isinstance(similarity_top_k, bool) or not isinstance(similarity_top_k, int):
            raise TypeError("similarity_top_k must be an integer")
        if similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be at least 1, got {similarity_top_k}")
        _embedding_methods(embed_model)
        self.guard = guard
        self.embed_model = embed_model
        self.similarity_top_k = similarity_top_k
        self.subject: Subject | None = None if subject is None else _as_subject(subject)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    # -- construction --------------------------------------------------------------------

    def with_subject(self, subject: Subject | Mapping[str, Any]) -> GuardedRetriever:
        """A new retriever bound to ``subject`` (this one is not changed)."""
        return GuardedRetriever(
            self.guard,
            embed_model=self.embed_model,
            similarity_top_k=self.similarity_top_k,
            subject=subject,
            callback_manager=self.callback_manager,
            verbose=self._verbose,
        )

    @classmethod
    def from_vector_store(
        cls,
        vector_store: Any,
        policy: Policy,
        *,
        embed_model: Any,
        subject: Subject | Mapping[str, Any] | None = None,
        similarity_top_k: int = 4,
        **guard_options: Any,
    ) -> GuardedRetriever:
        """Guard an existing LlamaIndex ``QdrantVectorStore``; no data moves.

        The guard searches the same client and collection through
        :class:`ragguard.QdrantStore` with ``layout="llamaindex"`` (metadata at the top
        level of the payload, the text in the ``_node_content`` JSON), the policy's filter
        pushed into Qdrant, on the store's dense vector. ``guard_options`` go to
        :class:`ragguard.Guard` (``provenance=``, ``audit=``, ``tracer_provider=`` ...).
        """
        try:
            from llama_index.vector_stores.qdrant import QdrantVectorStore
        except ImportError as exc:
            raise TypeError(
                "from_vector_store needs llama-index-vector-stores-qdrant "
                "(pip install 'ragguard-llamaindex[qdrant]')"
            ) from exc
        if not isinstance(vector_store, QdrantVectorStore):
            raise TypeError(
                "from_vector_store supports LlamaIndex's QdrantVectorStore (filter pushdown "
                f"on the same collection); got {type(vector_store).__name__}"
            )
        client = vector_store.client
        store = QdrantStore(
            client=client,
            async_client=getattr(vector_store, "_aclient", None),
            collection=vector_store.collection_name,
            vector_name=_dense_vector_name(client, vector_store),
            layout="llamaindex",
        )
        return cls(
            Guard(policy, store, **guard_options),
            embed_model=embed_model,
            similarity_top_k=similarity_top_k,
            subject=subject,
        )

    # -- retrieval -----------------------------------------------------------------------

    def retrieve_for(
        self, subject: Subject | Mapping[str, Any], str_or_query_bundle: QueryType
    ) -> list[NodeWithScore]:
        """``retrieve`` for ``subject`` (refused if this retriever is bound to another)."""
        return self._for(subject).retrieve(str_or_query_bundle)

    async def aretrieve_for(
        self, subject: Subject | Mapping[str, Any], str_or_query_bundle: QueryType
    ) -> list[NodeWithScore]:
        """Async :meth:`retrieve_for`."""
        return await self._for(subject).aretrieve(str_or_query_bundle)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        subject = self._bound_subject()
        vector = query_bundle.embedding
        if vector is None:
            sync, _ = _embedding_methods(self.embed_model)
            vector = sync(query_bundle.query_str)
        hits = self.guard.search(subject, list(vector), self.similarity_top_k)
        return [node_from_hit(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        subject = self._bound_subject()
        vector = query_bundle.embedding
        if vector is None:
            _, asynchronous = _embedding_methods(self.embed_model)
            vector = await asynchronous(query_bundle.query_str)
        hits = await self.guard.asearch(subject, list(vector), self.similarity_top_k)
        return [node_from_hit(hit) for hit in hits]

    def _for(self, subject: Subject | Mapping[str, Any]) -> GuardedRetriever:
        given = _as_subject(subject)
        if self.subject is not None and given != self.subject:
            raise SubjectError(
                f"this retriever is bound to subject {self.subject.id!r} but the call asks "
                f"for {given.id!r}; use an unbound retriever with retrieve_for"
            )
        return self if self.subject is not None else self.with_subject(given)

    def _bound_subject(self) -> Subject:
        if self.subject is None:
            raise SubjectError(
                "GuardedRetriever has no subject: use .with_subject(subject).retrieve(...), "
                "retrieve_for(subject, query), or GuardedRetriever(..., subject=...)"
            )
        return self.subject


def node_from_hit(hit: Hit) -> NodeWithScore:
    """A released hit as a LlamaIndex ``NodeWithScore``.

    The node's ``metadata`` is the chunk's metadata plus ``metadata["ragguard"]``::

        {"rule": "p, engineer, engineering, 2, read",  # the policy line that released it
         "policy_version": "9f2c...", "score": 0.83,
         "provenance": {"status": "verified", "tag": {...}},  # None when not checked
         "flags": []}        # what flag-action screens noted
    """
    provenance = None
    if hit.provenance is not None:
        provenance = {
            "status": hit.provenance.status,
            "tag": dict(hit.provenance.tag) if hit.provenance.tag is not None else None,
        }
    decision = {
        "rule": hit.decision.rule,
        "policy_version": hit.decision.policy_version,
        "score": hit.score,
        "provenance": provenance,
        "flags": list(hit.flags),
    }
    node = TextNode(
        id_=hit.id,
        text=hit.text,
        metadata={**hit.metadata, DECISION_KEY: decision},
        excluded_llm_metadata_keys=[DECISION_KEY],
        excluded_embed_metadata_keys=[DECISION_KEY],
    )
    return NodeWithScore(node=node, score=hit.score)


def _embedding_methods(model: Any) -> tuple[Any, Any]:
    """The model's (sync, async) query-embedding methods: LlamaIndex's or LangChain's."""
    for sync_name, async_name in (
        ("get_query_embedding", "aget_query_embedding"),
        ("embed_query", "aembed_query"),
    ):
        sync, asynchronous = getattr(model, sync_name, None), getattr(model, async_name, None)
        if callable(sync) and callable(asynchronous):
            return sync, asynchronous
    raise TypeError(
        "embed_model must be a LlamaIndex embedding (get_query_embedding, "
        "aget_query_embedding) or have embed_query and aembed_query; "
        f"{type(model).__name__} has neither"
    )


def _dense_vector_name(client: Any, vector_store: Any) -> str | None:
    """The collection's dense vector: named (LlamaIndex's ``text-dense``) or unnamed."""
    try:
        info = client.get_collection(vector_store.collection_name)
    except Exception as exc:
        raise StoreError(
            f"cannot read Qdrant collection {vector_store.collection_name!r}: {exc}"
        ) from exc
    vectors = info.config.params.vectors
    if not isinstance(vectors, dict):
        return None
    name = str(vector_store.dense_vector_name)
    if name not in vectors:
        raise StoreError(
            f"Qdrant collection {vector_store.collection_name!r} has no dense vector "
            f"{name!r} (it has {sorted(vectors)})"
        )
    return name


def _as_subject(value: Any) -> Subject:
    if isinstance(value, Subject):
        return value
    if isinstance(value, Mapping) and "id" in value:
        unknown = set(value) - {"id", "attributes"}
        if unknown:
            raise SubjectError(
                f"a subject mapping has 'id' and 'attributes', not {sorted(unknown)}"
            )
        return Subject(id=value["id"], attributes=value.get("attributes") or {})
    raise SubjectError(
        "the subject must be a ragguard.Subject or a mapping with 'id' and 'attributes', "
        f"got {type(value).__name__}"
    )
