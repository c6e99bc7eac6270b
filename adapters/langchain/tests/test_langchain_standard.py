"""LangChain's own retriever contract (langchain-tests) for GuardedRetriever on an EdgeStore."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

import ragguard as rg
from ragguard.testing import HashEmbedder
from ragguard_langchain import GuardedRetriever

from lc_support import SUBJECTS


class TestGuardedRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _use_session_guard(self, guard: rg.Guard, embedder: HashEmbedder) -> None:
        self._params = {"guard": guard, "embeddings": embedder, "subject": SUBJECTS[1]}

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return GuardedRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return self._params

    @property
    def retriever_query_example(self) -> str:
        return "salary bands for the finance team"
