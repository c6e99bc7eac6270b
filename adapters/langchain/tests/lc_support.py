"""Constants shared by the adapter tests (a uniquely named module, not conftest)."""

from __future__ import annotations

import ragguard as rg

# Eight readers across the three demo tenants, with different roles and clearances.
SUBJECTS = [
    rg.Subject(id="alice", attributes={"dept": "engineering", "clearance": 1}),
    rg.Subject(id="bob", attributes={"dept": "finance", "clearance": 3}),
    rg.Subject(id="nadia", attributes={"dept": "hr", "clearance": 2}),
    rg.Subject(id="carol", attributes={"clearance": 0}),
    rg.Subject(id="kenji", attributes={"dept": "engineering", "clearance": 2}),
    rg.Subject(id="victor", attributes={"dept": "executive", "clearance": 3}),
    rg.Subject(id="samir", attributes={"dept": "engineering", "clearance": 3}),
    rg.Subject(id="anne", attributes={"dept": "hr", "clearance": 1}),
]
