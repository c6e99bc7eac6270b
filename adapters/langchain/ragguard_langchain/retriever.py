"""``GuardedRetriever``: a LangChain retriever that only returns what the asker may read.

::

    from ragguard_langchain import GuardedRetriever

    retriever = GuardedRetriever(guard=guard, embeddings=embeddings, k=4)
    docs = retriever.invoke(
        "how do I roll back a deploy?",
        config={"configurable": {"ragguard_subject": alice}},
    )

Every call runs one guarded search (:meth:`ragguard.Guard.search`) for exactly one
subject, given in one of three ways:

* ``GuardedRetriever(..., subject=alice)`` — a retriever bound to one user;
* ``retriever.with_subject(alice)`` — a new bound retriever (the original is untouched,
  so one shared retriever can serve every request);
* ``config={"configurable": {"ragguard_subject": alice}}`` per call — what LCEL chains
  pass down to every step. A mapping ``{"id": ..., "attributes": {...}}`` works too.

No subject raises :class:`ragguard.SubjectError`: there is no unfiltered search. A bound
retriever called with a *different* subject in its config also raises (two answers to
"who is asking" is an application bug, not something to guess about).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field, SkipValidation, field_validator, model_validator
from typing_extensions import Self

from ragguard import Guard, Hit, Policy, QdrantStore, SearchParams, Subject, SubjectError
from ragguard.policy import ir
from ragguard.stores import Store
from ragguard_langchain._filters import caller_filter_to_ir
from ragguard_langchain._types import QueryEmbedder
from ragguard_langchain.vectorstores import PostFilterStore, PostFilterWarning

__all__ = ["SUBJECT_CONFIG_KEY", "GuardedRetriever", "QueryEmbedder", "document_from_hit"]

SUBJECT_CONFIG_KEY = "ragguard_subject"
"""The ``config["configurable"]`` key that carries the subject of one call."""

_SEARCH_KWARGS = frozenset({"k", "filter", "search_params"})


class GuardedRetriever(BaseRetriever):
    """A ``BaseRetriever`` over a :class:`ragguard.Guard`.

    Returns ``Document``\\ s with ``id`` set and the guard's decision under
    ``metadata["ragguard"]``: ``rule`` (the policy line that released the chunk),
    ``score``, ``policy_version`` and ``provenance`` (``status`` and the
    signed ``tag``, for citing sources) — see :func:`document_from_hit`.

    ``k`` is the number of documents (per call: ``invoke(query, k=3)``);
    ``search_kwargs`` may hold ``"k"`` and ``"filter"``: a ``qdrant_client.models.Filter``
    over ``metadata.<attr>`` keys or a dict of metadata equalities, ANDed with the
    policy's filter (it narrows, it can never widen). ``invoke(query, filter=...)``
    narrows one call further. ``search_kwargs["search_params"]`` (a
    :class:`ragguard.SearchParams` or a dict such as ``{"hnsw_ef": 256}``) replaces the
    guard's search parameters, and ``invoke(query, search_params=...)`` those for one
    call: recall against latency, never which documents may be returned.

    The retriever holds no per-call state: share one instance across threads and tasks.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    guard: Guard
    embeddings: SkipValidation[QueryEmbedder]
    subject: Subject | None = None
    k: int = Field(default=4, ge=1)
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("embeddings", mode="before")
    @classmethod
    def _check_embeddings(cls, value: Any) -> Any:
        # Duck-typed like LangChain itself: anything with embed_query/aembed_query works
        # (ragguard.testing.HashEmbedder included), not only Embeddings subclasses.
        missing = [
            m for m in ("embed_query", "aembed_query") if not callable(getattr(value, m, None))
        ]
        if missing:
            raise TypeError(
                f"embeddings must have embed_query and aembed_query methods; "
                f"{type(value).__name__} lacks {', '.join(missing)}"
            )
        return value

    @field_validator("subject", mode="before")
    @classmethod
    def _check_subject(cls, value: Any) -> Any:
        return None if value is None else _as_subject(value)

    @model_validator(mode="after")
    def _check_search_kwargs(self) -> Self:
        unknown = set(self.search_kwargs) - _SEARCH_KWARGS
        if unknown:
            raise ValueError(
                f"unsupported search_kwargs {sorted(unknown)}; GuardedRetriever accepts "
                f"{sorted(_SEARCH_KWARGS)}"
            )
        if "k" in self.search_kwargs:
            k = self.search_kwargs["k"]
            if "k" in self.model_fields_set and k != self.k:
                raise ValueError(f"k={self.k} and search_kwargs['k']={k} disagree; pass one")
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"search_kwargs['k'] must be a positive integer, got {k!r}")
            object.__setattr__(self, "k", k)
        if "filter" in self.search_kwargs:
            caller_filter_to_ir(self.search_kwargs["filter"], _metadata_key(self.guard))
        if "search_params" in self.search_kwargs:
            try:
                params = SearchParams.coerce(self.search_kwargs["search_params"])
            except TypeError as exc:  # pydantic reports ValueErrors, not TypeErrors
                raise ValueError(str(exc)) from exc
            self.search_kwargs["search_params"] = params
        return self

    # -- construction --------------------------------------------------------------------

    def with_subject(self, subject: Subject | Mapping[str, Any]) -> GuardedRetriever:
        """A copy of this retriever bound to ``subject`` (this one is not changed)."""
        return self.model_copy(update={"subject": _as_subject(subject)})

    @classmethod
    def from_vectorstore(
        cls,
        vectorstore: VectorStore,
        policy: Policy,
        *,
        subject: Subject | Mapping[str, Any] | None = None,
        k: int = 4,
        search_kwargs: dict[str, Any] | None = None,
        embeddings: QueryEmbedder | None = None,
        **guard_options: Any,
    ) -> GuardedRetriever:
        """Guard an existing LangChain vector store; no data moves.

        A ``langchain_qdrant.QdrantVectorStore`` (dense retrieval) is queried through
        :class:`ragguard.QdrantStore` on the same client and collection, with the policy
        filter pushed into Qdrant. Any other ``VectorStore`` is wrapped in a
        :class:`~ragguard_langchain.PostFilterStore` (over-fetch, then re-check) and a
        :class:`~ragguard_langchain.PostFilterWarning` says that recall and cost then
        depend on how much of the corpus the subject may read. ``guard_options`` go to
        :class:`ragguard.Guard` (``provenance=``, ``audit=``, ``tracer_provider=`` ...).
        """
        embedder = embeddings or vectorstore.embeddings
        if embedder is None:
            raise ValueError("the vector store has no embeddings; pass embeddings=")
        store: Store | None = _qdrant_store(vectorstore)
        if store is None:
            warnings.warn(
                f"{type(vectorstore).__name__} cannot apply ragguard's filter inside the "
                "search: the guard over-fetches and filters afterwards, so recall and cost "
                "depend on how much of the corpus each subject may read (bounded by "
                "Guard(max_fetch_rounds=)). Use a Qdrant vector store for pushdown.",
                PostFilterWarning,
                stacklevel=2,
            )
            store = PostFilterStore(vectorstore, embeddings=embedder)
        guard = Guard(policy, store, **guard_options)
        return cls(
            guard=guard,
            embeddings=embedder,
            subject=None if subject is None else _as_subject(subject),
            k=k,
            search_kwargs=dict(search_kwargs or {}),
        )

    # -- the Runnable interface ----------------------------------------------------------

    def invoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        """Retrieve for the subject bound here or in ``config["configurable"]``."""
        return super().invoke(input, config, **_with_config_subject(config, kwargs))

    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`invoke`."""
        return await super().ainvoke(input, config, **_with_config_subject(config, kwargs))

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Any = None,
        ragguard_subject: Any = None,
        search_params: SearchParams | Mapping[str, Any] | None = None,
    ) -> list[Document]:
        subject, k, where = self._call_arguments(k, filter, ragguard_subject)
        vector = self.embeddings.embed_query(query)
        params = self._search_params(search_params)
        hits = self.guard.search(subject, vector, k, where=where, search_params=params)
        return [document_from_hit(hit) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Any = None,
        ragguard_subject: Any = None,
        search_params: SearchParams | Mapping[str, Any] | None = None,
    ) -> list[Document]:
        subject, k, where = self._call_arguments(k, filter, ragguard_subject)
        vector = await self.embeddings.aembed_query(query)
        params = self._search_params(search_params)
        hits = await self.guard.asearch(subject, vector, k, where=where, search_params=params)
        return [document_from_hit(hit) for hit in hits]

    def _search_params(
        self, call_params: SearchParams | Mapping[str, Any] | None
    ) -> SearchParams | Mapping[str, Any] | None:
        """The call's search parameters, else ``search_kwargs``', else the guard's."""
        if call_params is not None:
            return call_params  # Guard.search validates it (QueryError)
        params: SearchParams | None = self.search_kwargs.get("search_params")
        return params

    def _call_arguments(
        self, k: int | None, call_filter: Any, call_subject: Any
    ) -> tuple[Subject, int, ir.Expr | None]:
        subject = self._subject_for_call(call_subject)
        metadata_key = _metadata_key(self.guard)
        filters = [
            caller_filter_to_ir(f, metadata_key)
            for f in (self.search_kwargs.get("filter"), call_filter)
            if f is not None
        ]
        where = ir.and_(*filters) if filters else None
        return subject, self.k if k is None else k, where

    def _subject_for_call(self, call_subject: Any) -> Subject:
        given = None if call_subject is None else _as_subject(call_subject)
        if given is None and self.subject is None:
            raise SubjectError(
                "GuardedRetriever has no subject: pass subject=..., use "
                ".with_subject(subject), or invoke with "
                f'config={{"configurable": {{"{SUBJECT_CONFIG_KEY}": subject}}}}'
            )
        if given is not None and self.subject is not None and given != self.subject:
            raise SubjectError(
                f"this retriever is bound to subject {self.subject.id!r} but the call asks "
                f"for {given.id!r}; use an unbound retriever with a per-call subject"
            )
        subject = given or self.subject
        assert subject is not None
        return subject


def document_from_hit(hit: Hit) -> Document:
    """A released hit as a LangChain ``Document``.

    ``metadata`` is the chunk's metadata plus ``metadata["ragguard"]``::

        {"rule": "p, engineer, engineering, 2, read",  # the policy line that released it
         "score": 0.83, "policy_version": "9f2c...",
         "provenance": {"status": "verified", "tag": {...}},  # None when not checked
         "flags": []}        # what flag-action screens noted (ragguard.PromptInjectionScreen...)
    """
    provenance = None
    if hit.provenance is not None:
        provenance = {
            "status": hit.provenance.status,
            "tag": dict(hit.provenance.tag) if hit.provenance.tag is not None else None,
        }
    decision = {
        "rule": hit.decision.rule,
        "score": hit.score,
        "policy_version": hit.decision.policy_version,
        "provenance": provenance,
        "flags": list(hit.flags),
    }
    return Document(
        id=hit.id,
        page_content=hit.text,
        metadata={**hit.metadata, "ragguard": decision},
    )


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


def _with_config_subject(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    configurable: Mapping[str, Any] = (config or {}).get("configurable") or {}
    if SUBJECT_CONFIG_KEY not in configurable:
        return kwargs
    if kwargs.get(SUBJECT_CONFIG_KEY) is not None:
        raise SubjectError(
            f"the subject is given twice (config and {SUBJECT_CONFIG_KEY}=); pass it once"
        )
    return {**kwargs, SUBJECT_CONFIG_KEY: configurable[SUBJECT_CONFIG_KEY]}


def _metadata_key(guard: Guard) -> str:
    return guard.capabilities.metadata_key


def _qdrant_store(vectorstore: VectorStore) -> QdrantStore | None:
    """A pushdown store on the same collection when ``vectorstore`` is langchain-qdrant's."""
    try:
        from langchain_qdrant import QdrantVectorStore, RetrievalMode
    except ImportError:
        return None
    if not isinstance(vectorstore, QdrantVectorStore):
        return None
    if vectorstore.retrieval_mode != RetrievalMode.DENSE:
        raise ValueError(
            "GuardedRetriever.from_vectorstore supports dense QdrantVectorStore retrieval; "
            f"this one uses {vectorstore.retrieval_mode.value!r}"
        )
    return QdrantStore(
        client=vectorstore.client,
        collection=vectorstore.collection_name,
        content_key=vectorstore.content_payload_key,
        metadata_key=vectorstore.metadata_payload_key,
        vector_name=vectorstore.vector_name or None,
    )
