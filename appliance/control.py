"""What request handlers may do to the running appliance: narrow views, not the whole container.

`Services` implements these structurally; a handler annotates what it takes with one of them, so it
can reach nothing else (mypy checks it). Lower layers (pipeline, plc, store) never import this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from appliance.config import Config
from appliance.models.manifest import Manifest
from appliance.settings import Change


class ConfigControl(Protocol):
    """Read the configuration; change it as one transaction (propose, apply, write, or nothing)."""

    @property
    def config(self) -> Config: ...
    @property
    def config_path(self) -> Path | None: ...
    def change(self, updates: object) -> Change: ...


class ModelControl(Protocol):
    """Switch the running model: proven on the source first, refused with the reason otherwise."""

    def activate(self, name: str, version: int | None = None) -> Manifest: ...
    def rollback(self) -> Manifest: ...
