"""Sliding-window failure counters for brute-force protection (per process)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """Counts events per key over the last `window` seconds; thread-safe."""

    MAX_KEYS = 10_000

    def __init__(
        self, limit: int, window: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def configure(self, limit: int, window: int) -> None:
        with self._lock:
            self.limit, self.window = limit, window

    def _prune(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, *keys: str) -> int:
        """Seconds until every key is below the limit again; 0 when none is blocked."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                events = self._prune(key, now)
                if events is not None and len(events) >= self.limit:
                    # The oldest event that keeps the key at the limit must leave the window.
                    oldest = events[len(events) - self.limit]
                    wait = max(wait, oldest + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def hit(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                events = self._prune(key, now)
                if events is None:
                    events = self._events[key] = deque()
                events.append(now)
                # Bound memory per key: only the newest `limit` events matter.
                while len(events) > self.limit:
                    events.popleft()
            if len(self._events) > self.MAX_KEYS:
                # Keys that are never seen again would otherwise stay forever.
                for stale in list(self._events):
                    self._prune(stale, now)

    def reset(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._events.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
