"""Policies: Casbin models compiled into per-subject plans (pure: no I/O beyond loading).

::

    from ragguard.policy import Policy

    policy = Policy.from_casbin("model.conf", "policy.csv")
    plan = policy.plan(subject)            # a Plan: allow_all, deny_all or conditional
    decision = plan.decide(chunk_metadata) # a Decision: released, rule, reason

``ragguard.policy.ir`` is the filter language plans are written in (stores translate it).
"""

from ragguard.policy import ir
from ragguard.policy._plan import Decision, Plan, PlanKind
from ragguard.policy._policy import Policy

__all__ = ["Decision", "Plan", "PlanKind", "Policy", "ir"]
