"""Policies: Casbin models compiled into per-subject plans (pure: no I/O beyond loading)."""
