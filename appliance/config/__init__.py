"""Configuration: one TOML file, a default for every key, validated once at startup.

Every section is a frozen dataclass; every field carries a one-line description in its metadata, which
docs/config.md repeats (a test checks that). Problems are collected, not raised one by one, so
`appliance check-config` can report all of them with the key and the line of the file.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from appliance.config.sections import (
    BACKEND_NAMES,
    BAUD_RATES,
    CORE_POLICIES,
    DELEGATES,
    LOG_LEVELS,
    REJECT_WHEN,
    SERIAL_RESULTS,
    SNAPSHOT_MODES,
    SOURCE_KINDS,
    SOURCE_MODES,
    AuthConfig,
    BackendConfig,
    Config,
    DataConfig,
    InspectionConfig,
    LogConfig,
    ModelConfig,
    PipelineConfig,
    PlcConfig,
    SerialConfig,
    ServerConfig,
    SourceConfig,
    StoreConfig,
    setting,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance  # the type of what dataclasses.fields() takes (typeshed only)

T = TypeVar("T", bound="DataclassInstance")

INT_LIMIT = 2**63  # TOML integers are 64-bit; anything larger is refused, whatever the key's maximum
FLOAT_LIMIT = 1e9  # largest magnitude of a float key without its own maximum (no overflow downstream)
MAX_SHOWN = 60  # characters of a rejected value quoted in a problem


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.key}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one configuration file."""

    status = 400

    def __init__(self, problems: list[Problem], path: str = "") -> None:
        self.problems = problems
        self.path = path
        prefix = f"{path}: " if path else ""
        super().__init__("\n".join(prefix + str(p) for p in problems))


def sections() -> dict[str, type[Any]]:
    """Section name -> dataclass type, in file order."""
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def documented_keys() -> list[tuple[str, str, Any]]:
    """(section.key, description, default) for every key: the source of docs/config.md."""
    rows: list[tuple[str, str, Any]] = []
    for name, cls in sections().items():
        rows.extend((f"{name}.{f.name}", f.metadata["doc"], f.default) for f in dataclasses.fields(cls))
    return rows


class _LineFinder:
    """Finds the line of `[section]` or `key = ...` in TOML text (tomllib keeps no positions)."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def find(self, section: str, key: str | None = None) -> int | None:
        current = ""
        for number, raw in enumerate(self._lines, start=1):
            line = raw.strip()
            header = re.match(r"^\[\s*([^\]]+?)\s*\]", line)
            if header:
                current = header.group(1).strip().strip('"')
                if key is None and current == section:
                    return number
                continue
            if key is not None and current == section and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
                return number
        return None


def _shown(value: Any) -> str:
    """A short, always printable form of a value for a problem message (never int->str of 5,000 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT_LIMIT:
        return "a number beyond 64 bits"
    if isinstance(value, dict | list | tuple):
        return "a " + type(value).__name__
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _whole(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int):
        return value, "must be a whole number"
    return value, "must fit in 64 bits" if abs(value) >= INT_LIMIT else None


def _number(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value, "must be a number"
    if isinstance(value, int) and abs(value) >= INT_LIMIT:
        return value, "must be a finite number of reasonable size"
    value = float(value)
    return value, None if math.isfinite(value) else f"must be a finite number (got {_shown(value)})"


def _string_list(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return value, "must be a list of strings"
    return tuple(value), None


_TYPES: dict[Any, Any] = {
    bool: lambda v: (v, None if isinstance(v, bool) else "must be true or false"),
    int: _whole,
    float: _number,
    str: lambda v: (v, None if isinstance(v, str) else "must be a string"),
    tuple[str, ...]: _string_list,
}


def _coerce(value: Any, kind: Any, meta: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Check one value against its declared type and rules: (value, problem or None)."""
    check = _TYPES.get(kind)
    if check is not None:
        value, problem = check(value)
        if problem:
            return value, problem
    if kind is float and "max" not in meta and abs(value) > FLOAT_LIMIT:
        return value, f"must be at most {FLOAT_LIMIT:g} (got {_shown(value)})"
    return value, _check_rules(value, meta)


def _check_rules(value: Any, meta: Mapping[str, Any]) -> str | None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        return f"must be one of {', '.join(map(str, choices))} (got {_shown(value)})"
    each: tuple[Any, ...] = meta.get("each", ())  # the choices of every item of a list
    for item in value if each else ():
        if item not in each:
            return f"unknown item {_shown(item)}; known: {', '.join(map(str, each))}"
    if "min_items" in meta and len(value) < meta["min_items"]:
        return f"must name at least {meta['min_items']}"
    if "min" in meta and value < meta["min"]:
        return f"must be at least {meta['min']} (got {_shown(value)})"
    if "max" in meta and value > meta["max"]:
        return f"must be at most {meta['max']} (got {_shown(value)})"
    return None


def _build_section(name: str, cls: type[T], raw: Any, lines: _LineFinder) -> tuple[T, list[Problem]]:
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        return cls(), [Problem(name, "must be a table ([" + name + "])", lines.find(name))]
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            hint = f"; known keys: {', '.join(known)}"
            problems.append(Problem(f"{name}.{key}", "unknown key" + hint, lines.find(name, key)))
            continue
        coerced, problem = _coerce(value, hints[key], known[key].metadata)
        if problem:
            problems.append(Problem(f"{name}.{key}", problem, lines.find(name, key)))
        else:
            values[key] = coerced
    return cls(**values), problems


def _cross_checks(config: Config, lines: _LineFinder) -> list[Problem]:
    problems: list[Problem] = []
    src = config.source
    needs = {"video": "path", "folder": "path", "stream": "url"}
    if src.kind in needs and not getattr(src, needs[src.kind]):
        key = needs[src.kind]
        problems.append(
            Problem(
                f"source.{key}", f"is required when source.kind = {src.kind!r}", lines.find("source", "kind")
            )
        )
    if src.kind == "serial" and not config.serial.port:
        problems.append(
            Problem("serial.port", "is required when source.kind = 'serial'", lines.find("source", "kind"))
        )
    if src.reconnect_max_s < src.reconnect_min_s:
        problems.append(
            Problem(
                "source.reconnect_max_s",
                "must not be smaller than source.reconnect_min_s",
                lines.find("source", "reconnect_max_s"),
            )
        )
    return problems


def _load_toml(text: str, path: str) -> dict[str, Any]:
    """tomllib's parse, with every way it can fail turned into one problem (never a traceback)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        where = re.search(r"at line (\d+)", str(err))  # Python 3.11/3.12 keep the line only in the text
        line = int(where.group(1)) if where else getattr(err, "lineno", None)
        raise ConfigError([Problem("(file)", f"not valid TOML: {err}", line)], path) from err
    except RecursionError as err:
        raise ConfigError([Problem("(file)", "nested too deeply to read")], path) from err
    except ValueError as err:  # e.g. an integer literal over Python's digit limit
        raise ConfigError([Problem("(file)", f"not a valid value: {str(err)[:MAX_SHOWN]}")], path) from err


def parse_config(text: str, path: str = "") -> Config:
    """Parse TOML text into a Config, or raise ConfigError listing every problem.

    This is the one validation of a configuration file: `appliance serve`, `appliance check-config`
    and every change made through the API or the UI go through it, so they accept exactly the same files.
    """
    raw = _load_toml(text, path)
    lines = _LineFinder(text)
    problems: list[Problem] = []
    built: dict[str, Any] = {}
    known = sections()
    for name, value in raw.items():
        if name not in known:
            problems.append(
                Problem(name[:MAX_SHOWN], f"unknown section; known: {', '.join(known)}", lines.find(name))
            )
            continue
        built[name], found = _build_section(name, known[name], value, lines)
        problems.extend(found)
    config = Config(**built)
    problems.extend(_cross_checks(config, lines))
    if problems:
        raise ConfigError(problems, path)
    return config


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; None gives the defaults."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([Problem("(file)", f"cannot read: {err.strerror}")], str(file)) from err
    except UnicodeDecodeError as err:
        raise ConfigError([Problem("(file)", "is not UTF-8 text")], str(file)) from err
    return parse_config(text, str(file))


def replace_section(config: Config, name: str, **changes: Any) -> Config:
    """A copy of config with some keys of one section changed (tests and the API use it)."""
    section = dataclasses.replace(getattr(config, name), **changes)
    return dataclasses.replace(config, **{name: section})


__all__ = [
    "BACKEND_NAMES",
    "BAUD_RATES",
    "CORE_POLICIES",
    "DELEGATES",
    "LOG_LEVELS",
    "REJECT_WHEN",
    "SERIAL_RESULTS",
    "SNAPSHOT_MODES",
    "SOURCE_KINDS",
    "SOURCE_MODES",
    "AuthConfig",
    "BackendConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "InspectionConfig",
    "LogConfig",
    "ModelConfig",
    "PipelineConfig",
    "PlcConfig",
    "Problem",
    "SerialConfig",
    "ServerConfig",
    "SourceConfig",
    "StoreConfig",
    "documented_keys",
    "load_config",
    "parse_config",
    "replace_section",
    "sections",
    "setting",
]
