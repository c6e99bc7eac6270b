"""Payload indexes a policy needs (``Policy.index_specs``), which stores create.

It lives with the policy, not with the stores: stores import the policy, never the
reverse (``ragguard.stores.IndexSpec`` and ``ragguard.IndexSpec`` re-export it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["IndexSpec", "PayloadSchema"]

PayloadSchema = Literal["keyword", "integer", "float", "bool"]


@dataclass(frozen=True)
class IndexSpec:
    """A payload index a policy needs: metadata attribute, schema, tenant flag."""

    field: str
    schema: PayloadSchema
    is_tenant: bool = False
