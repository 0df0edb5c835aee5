"""Explicit source registry: config `source.kind` -> a factory. The serial source plugs in here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from appliance.config import SourceConfig
from appliance.errors import SourceError
from appliance.sources.base import Source
from appliance.sources.files import ImageFolderSource, VideoFileSource
from appliance.sources.live import Backoff, LiveSource, PushSource, camera_opener, stream_opener

SourceFactory = Callable[[SourceConfig], Source]


def _backoff(cfg: SourceConfig) -> Backoff:
    return Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)


SOURCES: dict[str, SourceFactory] = {
    "video": lambda c: VideoFileSource(Path(c.path), c.name, c.loop, c.rate),
    "folder": lambda c: ImageFolderSource(Path(c.path), c.name, c.loop, c.rate),
    "camera": lambda c: LiveSource(c.name, "camera", camera_opener(c.device, c.width, c.height), _backoff(c)),
    "stream": lambda c: LiveSource(c.name, "stream", stream_opener(c.url), _backoff(c)),
    "push": lambda c: PushSource(c.name),
    # "serial": added by the firmware-bridge integration (SENSOR_FRAME tensors and TRIGGERs).
}


def create_source(cfg: SourceConfig) -> Source | None:
    """The configured source, or None for kind = "none" (inference only through the API)."""
    if cfg.kind == "none":
        return None
    factory = SOURCES.get(cfg.kind)
    if factory is None:
        raise SourceError(f"source kind {cfg.kind!r} is not available in this build")
    return factory(cfg)
