"""Explicit source registry: config `source.kind` -> a factory. The serial source plugs in here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from appliance.config import SourceConfig
from appliance.errors import SourceError
from appliance.sources.base import Source
from appliance.sources.files import ImageFolderSource, VideoFileSource
from appliance.sources.live import (
    LiveSource,
    PushSource,
    Reconnect,
    camera_opener,
    camera_probe,
    stream_opener,
    stream_probe,
)
from appliance.sources.serial import SerialLink, SerialSource

SourceFactory = Callable[[SourceConfig, SerialLink | None], Source]


def _backoff(cfg: SourceConfig) -> Reconnect:
    return Reconnect(cfg.reconnect_min_s, cfg.reconnect_max_s, stall_s=cfg.stall_s)


def _serial(cfg: SourceConfig, link: SerialLink | None) -> Source:
    if link is None:
        raise SourceError("source.kind = 'serial' needs serial.port")
    return SerialSource(cfg.name, link)


SOURCES: dict[str, SourceFactory] = {
    "video": lambda c, _: VideoFileSource(Path(c.path), c.name, c.loop, c.rate),
    "folder": lambda c, _: ImageFolderSource(Path(c.path), c.name, c.loop, c.rate),
    "camera": lambda c, _: LiveSource(
        c.name,
        "camera",
        camera_opener(c.device, c.width, c.height, c.stall_s),
        _backoff(c),
        camera_probe(c.device),
    ),
    "stream": lambda c, _: LiveSource(
        c.name, "stream", stream_opener(c.url, c.stall_s), _backoff(c), stream_probe(c.url)
    ),
    "push": lambda c, _: PushSource(c.name),
    "serial": _serial,  # SENSOR_FRAME tensors from a microcontroller (firmware-bridge)
}


def create_source(cfg: SourceConfig, link: SerialLink | None = None) -> Source | None:
    """The configured source, or None for kind = "none" (inference only through the API)."""
    if cfg.kind == "none":
        return None
    factory = SOURCES.get(cfg.kind)
    if factory is None:
        raise SourceError(f"source kind {cfg.kind!r} is not available in this build")
    return factory(cfg, link)
