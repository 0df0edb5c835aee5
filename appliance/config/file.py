"""The configuration file at run time: read it, validate a change as a whole, write it back.

A change is proposed as {section: {key: value}} (a value of null removes the key: back to its default).
`ConfigFile.propose` applies it to the file's own TOML document (tomlkit keeps the operator's comments,
key order and explicit defaults), renders the new file text and validates that text with the same
`parse_config` that `appliance serve` and `appliance check-config` use, plus the checks only a running
appliance can make (the model must exist in the registry). Every problem is listed with its key.
`ConfigFile.commit` writes that validated text atomically (temp file, fsync, rename, fsync of the
folder); a rejected change never touches the file.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.toml_document import TOMLDocument

from appliance import atomic
from appliance.config import Config, ConfigError, Problem, parse_config, sections

# Sections every key of which is applied while running, and single keys of other sections that are.
LIVE_SECTIONS = frozenset({"source", "inspection", "plc", "log", "model"})
LIVE_KEYS = frozenset(
    {
        "store.snapshots",
        "store.max_age_days",
        "store.max_rows",
        "store.max_bytes",
        "auth.rate_per_s",
        "auth.burst",
        "auth.anonymous_read",
        "pipeline.snapshot_every",
    }
)
# Keys that are never shown or written back through the API (none yet; secrets live in auth.json).
HIDDEN_KEYS: frozenset[str] = frozenset()

Checks = Callable[[Config], list[Problem]]


def is_live(key: str) -> bool:
    """True when a changed key takes effect without a restart."""
    return key.split(".", maxsplit=1)[0] in LIVE_SECTIONS or key in LIVE_KEYS


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


def to_toml(config: Config) -> str:
    """Every non-default key of `config` as TOML (what stands in for the file when there is none)."""
    default = Config()
    doc = tomlkit.document()
    for name in sections():
        section, base = getattr(config, name), getattr(default, name)
        table = tomlkit.table()
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if value != getattr(base, f.name):
                table[f.name] = list(value) if isinstance(value, tuple) else value
        if table:
            doc[name] = table
    return tomlkit.dumps(doc)


@dataclass(frozen=True)
class Change:
    config: Config
    changed: tuple[str, ...]
    restart_needed: tuple[str, ...]
    text: str = ""  # the new file, already validated


def _shape_problems(updates: Any) -> list[Problem]:
    """Problems of the proposal's shape: known sections and keys only, objects where objects belong."""
    if not isinstance(updates, Mapping):
        return [Problem("(body)", "must be an object of sections")]
    known = sections()
    problems: list[Problem] = []
    for section, values in updates.items():
        if section not in known:
            problems.append(Problem(str(section)[:60], f"unknown section; known: {', '.join(known)}"))
            continue
        if not isinstance(values, Mapping):
            problems.append(Problem(section, "must be an object of keys"))
            continue
        names = [f.name for f in dataclasses.fields(known[section])]
        for key in values:
            if key not in names:
                problems.append(
                    Problem(f"{section}.{str(key)[:60]}", "unknown key; known keys: " + ", ".join(names))
                )
    return problems


def _edit(text: str, updates: Mapping[str, Mapping[str, Any]], only: set[str] | None) -> str:
    """`text` with the updates applied (only the keys in `only`, when given), comments and order kept."""
    doc: TOMLDocument = tomlkit.parse(text)
    problems: list[Problem] = []
    for section, values in updates.items():
        for key, value in values.items():
            name = f"{section}.{key}"
            if only is not None and name not in only:
                continue
            table: Any = doc.get(section)
            if value is None:
                if table is not None and key in table:
                    del table[key]
                continue
            if table is None:
                table = tomlkit.table()
                doc[section] = table
            try:
                table[key] = tomlkit.item(value)
            except (TOMLKitError, TypeError, ValueError, RecursionError):
                problems.append(Problem(name, "is not a value a TOML file can hold"))
    if problems:
        raise ConfigError(problems)
    return tomlkit.dumps(doc)


class ConfigFile:
    """The running configuration and the file it came from (None: defaults, nothing to write)."""

    def __init__(self, config: Config, path: Path | None, checks: Checks | None = None) -> None:
        self.config = config
        self.path = path
        self._checks = checks
        if path is not None and path.is_file():
            self._text = path.read_text(encoding="utf-8")
        else:
            self._text = to_toml(config)
        self._overrides = overrides_of(config, self._text)
        self._lock = threading.Lock()

    def propose(self, updates: Any) -> Change:
        """Validate `updates` on top of the current file; raises ConfigError listing every problem."""
        problems = _shape_problems(updates)
        if problems:
            raise ConfigError(problems)
        with self._lock:
            text, current = self._text, self.config
        try:
            new = self._validated(_edit(text, updates, None))
            changed = _changed(current, new)
            # the file gets only the keys that change something (and removals): the rest stays as written
            removals = {f"{s}.{k}" for s, keys in updates.items() for k, v in keys.items() if v is None}
            final = _edit(text, updates, set(changed) | removals)
            new = self._validated(final)
        except RecursionError as err:
            raise ConfigError([Problem("(body)", "nested too deeply")]) from err
        restart = tuple(key for key in changed if not is_live(key))
        return Change(new, changed, restart, final)

    def _validated(self, text: str) -> Config:
        parsed = parse_config(text)
        problems = self._checks(parsed) if self._checks is not None else []
        if problems:
            raise ConfigError(problems)
        return _with_overrides(parsed, self._overrides)

    def commit(self, change: Change) -> None:
        """Write the change's file text atomically; on failure the file and this object are unchanged."""
        with self._lock:
            if self.path is not None:
                write_atomic(self.path, change.text)
            self._text = change.text
            self.config = change.config


def overrides_of(running: Config, text: str) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} where the running config differs from its file: command-line
    overrides (--host, --port, --data-dir), which every later change keeps."""
    try:
        from_file = parse_config(text)
    except ConfigError:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for name in sections():
        mine, theirs = getattr(running, name), getattr(from_file, name)
        keys = {f.name: getattr(mine, f.name) for f in dataclasses.fields(mine)}
        diff = {k: v for k, v in keys.items() if getattr(theirs, k) != v}
        if diff:
            found[name] = diff
    return found


def _with_overrides(parsed: Config, overrides: Mapping[str, Mapping[str, Any]]) -> Config:
    for name, values in overrides.items():
        parsed = dataclasses.replace(parsed, **{name: dataclasses.replace(getattr(parsed, name), **values)})
    return parsed


def _changed(old: Config, new: Config) -> tuple[str, ...]:
    before, after = to_dict(old), to_dict(new)
    return tuple(f"{s}.{k}" for s, keys in after.items() for k, v in keys.items() if before[s][k] != v)


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one; the file keeps its permissions."""
    atomic.write_bytes(path, text.encode("utf-8"), atomic.mode_of(path))
