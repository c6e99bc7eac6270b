"""Gateway workers on EdgeStore read replicas: slots and the refresh timer."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

import ragguard as rg
from ragguard.exceptions import ConfigError
from ragguard.gateway import load_config
from ragguard.gateway._replica import ReplicaRefresher, open_worker_replica


def test_replica_paths_resolve_and_workers_take_distinct_slots(tmp_path: Path) -> None:
    """[store] kind = "replica": snapshots/replicas are relative to the file; each
    opener takes the first free slot (w0, w1, ...), a released slot is reused, and when
    every slot is taken the error names the setting."""
    (tmp_path / "gateway.toml").write_text(
        '[policy]\nmodel = "m"\npolicy = "p"\n'
        '[store]\nkind = "replica"\nsnapshots = "snaps"\nreplicas = "reps"\n'
        "max_replicas = 2\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "gateway.toml")
    assert config.store.snapshots == tmp_path.resolve() / "snaps"
    assert config.store.replicas == tmp_path.resolve() / "reps"
    with rg.EdgeStore.create(tmp_path / "primary", dim=4) as primary:
        primary.upsert([rg.Chunk(text="t", metadata={"a": 1}, vector=[1.0, 0.0, 0.0, 0.0])])
        version = primary.snapshot(tmp_path / "snaps")
    first, first_slot = open_worker_replica(config.store)
    second, second_slot = open_worker_replica(config.store)
    try:
        assert (first_slot, second_slot) == ("w0", "w1")
        assert first.data_version == second.data_version == version
        with pytest.raises(ConfigError, match="max_replicas"):
            open_worker_replica(config.store)
        first.close()
        again, again_slot = open_worker_replica(config.store)
        assert again_slot == "w0"
        again.close()
    finally:
        first.close()
        second.close()


def _publish(tmp_path: Path, texts: list[str]) -> tuple[rg.EdgeStore, str]:
    primary = rg.EdgeStore.create(tmp_path / "primary", dim=4)
    primary.upsert(
        [
            rg.Chunk(text=t, metadata={"a": 1}, vector=[1.0, float(i), 0.0, 0.0])
            for i, t in enumerate(texts)
        ]
    )
    return primary, primary.snapshot(tmp_path / "snaps")


def test_the_refresher_moves_to_a_new_snapshot_and_survives_a_failed_refresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every interval the replica moves to the newest snapshot; a refresh that fails (the
    published snapshot is missing) is logged and the replica keeps serving; stop() ends
    the thread."""
    primary, first = _publish(tmp_path, ["one"])
    replica = rg.EdgeStore.open_replica(tmp_path / "reps" / "w0", source=tmp_path / "snaps")
    refresher = ReplicaRefresher(replica, 0.05)
    refresher.start()
    try:
        primary.upsert([rg.Chunk(text="two", metadata={"a": 2}, vector=[0.0, 1.0, 0.0, 0.0])])
        second = primary.snapshot(tmp_path / "snaps")
        deadline = time.monotonic() + 30
        while replica.data_version != second:
            assert time.monotonic() < deadline, "the refresher did not move to the new snapshot"
            time.sleep(0.02)
        assert replica.count() == 2
        with caplog.at_level(logging.WARNING, logger="ragguard.gateway"):
            (tmp_path / "snaps" / "LATEST").write_text("snapshot-99999999-gone\n")
            deadline = time.monotonic() + 30
            while not any("refresh failed" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "no warning for the failed refresh"
                time.sleep(0.02)
        assert replica.data_version == second
        assert replica.count() == 2
    finally:
        refresher.stop()
        replica.close()
        primary.close()
    assert first != second
