"""Disagreeing examples of a shadow run: small JPEG thumbnails on the data dir, a bounded ring.

DATA/shadow/examples/<n>.jpg holds the newest `limit` frames on which the candidate disagreed with the
active model; what each said is kept in memory beside them. The folder is emptied when a run starts
or stops and when the appliance starts, so thumbnails never outlive their run.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections import deque
from pathlib import Path
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger(__name__)

THUMB_EDGE = 160  # longest side of a thumbnail, pixels
THUMB_QUALITY = 70
MAX_INDEX = 10**9


class Examples:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._items: deque[dict[str, Any]] = deque()
        self._next = 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            shutil.rmtree(self.folder, ignore_errors=True)

    def keep(self, image: np.ndarray | None, what: dict[str, Any], limit: int) -> None:
        """Keep one disagreeing frame (no image: only what was said), dropping the oldest past `limit`."""
        if limit <= 0:
            return
        with self._lock:
            index, self._next = self._next, self._next % MAX_INDEX + 1
            item = {"id": index, **what, "thumbnail": False}
            if image is not None:
                item["thumbnail"] = self._write(index, image)
            self._items.append(item)
            while len(self._items) > limit:
                old = self._items.popleft()
                (self.folder / f"{old['id']}.jpg").unlink(missing_ok=True)

    def _write(self, index: int, image: np.ndarray) -> bool:
        h, w = image.shape[:2]
        scale = THUMB_EDGE / max(h, w, 1)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
        if not ok:
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{index}.jpg"
            tmp.write_bytes(data.tobytes())  # throwaway thumbnails: renamed into place, no fsync
            os.replace(tmp, self.folder / f"{index}.jpg")
        except OSError as err:
            logger.warning("cannot keep a shadow thumbnail: %s", err)
            return False
        return True

    def listing(self) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            return [dict(item) for item in reversed(self._items)]

    def path_of(self, index: int) -> Path | None:
        with self._lock:
            known = any(item["id"] == index and item["thumbnail"] for item in self._items)
        path = self.folder / f"{index}.jpg"
        return path if known and path.is_file() else None
