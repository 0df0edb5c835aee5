"""The configuration file at run time: read it, validate a change, write it back, say what applies live.

Changes are validated as a whole new file (the same rules as at startup) before anything is written;
a rejected change leaves the file and the running appliance as they were. The file is rewritten
atomically from the validated values (comments are not kept).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config import Config, ConfigError, Problem, parse_config, sections

# Sections whose keys take effect without a restart (the services re-read them).
LIVE_SECTIONS = frozenset({"source", "store", "auth", "log", "inspection", "pipeline", "plc", "model"})
# Keys of live sections that still need a restart (read once when the HTTP app is built).
RESTART_KEYS = frozenset({"auth.session_hours"})
# Keys that are never shown or written back through the API (none yet; secrets live in auth.json).
HIDDEN_KEYS: frozenset[str] = frozenset()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # JSON string escapes are valid TOML ones


def to_toml(config: Config) -> str:
    """Every non-default key of `config` as TOML (a default config gives a header only)."""
    default = Config()
    lines = ["# edge-appliance configuration (see docs/config.md)"]
    for name in sections():
        section, base = getattr(config, name), getattr(default, name)
        changed = [
            f for f in dataclasses.fields(section) if getattr(section, f.name) != getattr(base, f.name)
        ]
        if changed:
            lines.append(f"\n[{name}]")
            lines.extend(f"{f.name} = {_toml_value(getattr(section, f.name))}" for f in changed)
    return "\n".join(lines) + "\n"


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in sections():
        section = dataclasses.asdict(getattr(config, name))
        out[name] = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in section.items()
            if f"{name}.{k}" not in HIDDEN_KEYS
        }
    return out


@dataclass(frozen=True)
class Change:
    config: Config
    changed: tuple[str, ...]
    restart_needed: tuple[str, ...]


class ConfigFile:
    """The running configuration and the file it came from (None: defaults, nothing to write)."""

    def __init__(self, config: Config, path: Path | None) -> None:
        self.config = config
        self.path = path
        self._lock = threading.Lock()

    def propose(self, updates: Mapping[str, Mapping[str, Any]]) -> Change:
        """Validate `updates` ({section: {key: value}}) on top of the current values."""
        merged = to_dict(self.config)
        problems: list[Problem] = []
        for section, values in updates.items():
            if section not in merged:
                problems.append(Problem(section, "unknown section"))
                continue
            if not isinstance(values, Mapping):
                problems.append(Problem(section, "must be an object of keys"))
                continue
            merged[section].update(values)
        if problems:
            raise ConfigError(problems)
        new = parse_config(_dict_to_toml(merged))
        changed = tuple(
            f"{s}.{k}"
            for s, keys in to_dict(new).items()
            for k, v in keys.items()
            if to_dict(self.config)[s][k] != v
        )
        restart = tuple(
            key for key in changed if key.split(".")[0] not in LIVE_SECTIONS or key in RESTART_KEYS
        )
        return Change(new, changed, restart)

    def commit(self, change: Change) -> None:
        with self._lock:
            if self.path is not None:
                _write_atomic(self.path, to_toml(change.config))
            self.config = change.config


def _dict_to_toml(data: Mapping[str, Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None)
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
