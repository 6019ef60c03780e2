"""A small thread-safe time-to-live cache for rows that rarely change (accounts, projects)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Remember ``load(key)`` for ``seconds``; a None result is not remembered."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[K], V | None]) -> V | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load(key)
        if value is not None:
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.seconds, value)
        return value

    def peek(self, key: K) -> V | None:
        """The remembered value, if fresh; never loads."""
        with self._lock:
            hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def forget(self, key: K) -> None:
        """Drop ``key`` so the next :meth:`get` loads it afresh (after a change in this process)."""
        with self._lock:
            self._entries.pop(key, None)
