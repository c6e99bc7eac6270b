"""Serving EdgeStore read replicas from several gateway worker processes.

Each worker process opens its own replica of the newest snapshot in ``[store]
snapshots``, in the first free slot directory ``<replicas>/w0``, ``w1``, ... (a replica
directory is locked to one process, so concurrent workers take distinct slots), and a
daemon thread refreshes it every ``refresh_s`` seconds.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import ragguard as rg
from ragguard.exceptions import ConfigError, ReplicaInUseError, StoreError
from ragguard.gateway._config import StoreSettings

__all__ = ["ReplicaRefresher", "open_worker_replica"]

logger = logging.getLogger("ragguard.gateway")


def open_worker_replica(settings: StoreSettings) -> tuple[rg.EdgeStore, str]:
    """This process's replica in the first free slot, and the slot's name (``w0``...)."""
    assert settings.snapshots is not None
    assert settings.replicas is not None
    for index in range(settings.max_replicas):
        slot = f"w{index}"
        try:
            store = rg.EdgeStore.open_replica(
                Path(settings.replicas) / slot, source=settings.snapshots
            )
        except ReplicaInUseError:
            continue  # another worker serves this slot
        return store, slot
    raise ConfigError(
        f"[store] all {settings.max_replicas} replica slots under {settings.replicas} are in "
        "use: raise max_replicas or run fewer workers"
    )


class ReplicaRefresher:
    """A daemon thread calling ``store.refresh()`` every ``interval_s`` seconds.

    A failed refresh is logged and the replica keeps serving the version it has
    (``EdgeStore.refresh`` guarantees that); the next tick tries again.
    """

    def __init__(self, store: rg.EdgeStore, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="ragguard-replica-refresh", daemon=True
        )

    def start(self) -> None:
        """Start refreshing (once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for a refresh in progress to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.store.refresh():
                    logger.info("ragguard gateway: replica now serves %s", self.store.data_version)
            except StoreError as exc:
                if self._stop.is_set():
                    return
                logger.warning(
                    "ragguard gateway: replica refresh failed, still serving %s: %s",
                    self.store.data_version,
                    exc,
                )
