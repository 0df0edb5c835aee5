"""Results of repeated identical inputs: keyed by the input's SHA-256 and the model version."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any


def cache_key(model_ref: str, data: bytes) -> str:
    return f"{model_ref}:{hashlib.sha256(data).hexdigest()}"


class ResultCache:
    """A bounded LRU of result JSON documents, with hit and miss counters."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: str, document: dict[str, Any]) -> None:
        if self.entries <= 0:
            return
        with self._lock:
            self._items[key] = document
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def status(self) -> dict[str, int]:
        return {
            "entries": len(self._items),
            "capacity": self.entries,
            "hits": self.hits,
            "misses": self.misses,
        }
