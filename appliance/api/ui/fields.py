"""Config keys as form fields: what input each needs, and how a submitted string becomes a value.

Built from the Config dataclasses (type, default, doc string, choices, min, max), so a new key shows up
in the form by itself. Values that do not convert are passed on as strings: the config validator then
names the problem for that key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, get_type_hints

from starlette.datastructures import ImmutableMultiDict

from appliance.config import Config, sections

# Shown on the Configuration page, in this order, when the Config has them.
EDITABLE = ("source", "model", "backend", "inspection", "store", "plc", "auth", "pipeline", "log")
TITLES = {
    "source": "Source",
    "model": "Model",
    "backend": "Backend",
    "inspection": "Inspection thresholds",
    "store": "Storage and retention",
    "plc": "PLC",
    "auth": "API access",
    "pipeline": "Pipeline",
    "log": "Logging",
}

WORDS = {"url": "URL", "urls": "URLs", "id": "ID", "fps": "FPS", "iou": "IoU", "mqtt": "MQTT", "qos": "QoS"}
LABELS = {"max_bytes": "Max size (bytes)"}
UNITS = ("s", "ms", "days", "bytes", "hours")


@dataclass(frozen=True)
class Field:
    section: str
    key: str
    kind: str  # bool, int, float, str, list, choice
    doc: str
    default: Any
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def label(self) -> str:
        """'reconnect_max_s' -> 'Reconnect max (s)', 'url' -> 'URL'."""
        if self.key in LABELS:
            return LABELS[self.key]
        words = [WORDS.get(w, w) for w in self.key.split("_")]
        if words[-1] in UNITS:
            words[-1] = f"({words[-1]})"
        text = " ".join(words)
        return text[0].upper() + text[1:]

    @property
    def dom_id(self) -> str:
        return "f-" + self.name.replace(".", "-").replace("_", "-")

    def shown(self, value: Any) -> str:
        """The value as the input shows it."""
        if isinstance(value, tuple | list):
            return ", ".join(str(v) for v in value)
        return str(value)

    def parse(self, form: ImmutableMultiDict[str, str]) -> Any:
        """The submitted value, typed when it converts (else the raw string, for the validator)."""
        if self.kind == "bool":
            return form.get(self.name) == "on"
        raw = form.get(self.name, "").strip()
        if self.kind == "list":
            return [v.strip() for v in raw.split(",") if v.strip()]
        converter = {"int": int, "float": float}.get(self.kind)
        if converter is None:
            return raw
        try:
            return converter(raw)
        except ValueError:
            return raw


def _kind(hint: Any, choices: tuple[str, ...] | None) -> str:
    if choices:
        return "choice"
    names = {bool: "bool", int: "int", float: "float", str: "str"}
    return names.get(hint, "list")


def fields_of(section: str) -> list[Field]:
    cls = sections()[section]
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        choices = tuple(meta.get("choices") or ())
        field = Field(section, f.name, _kind(hints[f.name], choices), meta.get("doc", ""), f.default)
        out.append(dataclasses.replace(field, choices=choices, low=meta.get("min"), high=meta.get("max")))
    return out


def editable_sections() -> list[str]:
    known = sections()
    return [name for name in EDITABLE if name in known]


def form_sections(config: Config) -> list[dict[str, Any]]:
    """[{name, title, fields: [(Field, current value as shown)]}] for the template."""
    return [
        {
            "name": name,
            "title": TITLES.get(name, name.capitalize()),
            "fields": [(f, f.shown(getattr(getattr(config, name), f.key))) for f in fields_of(name)],
        }
        for name in editable_sections()
    ]


def updates_from(form: ImmutableMultiDict[str, str]) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} for the keys the form carried (sections it did not carry are skipped)."""
    updates: dict[str, dict[str, Any]] = {}
    for name in editable_sections():
        if form.get(f"present.{name}") != "1":
            continue
        # an unchecked checkbox sends nothing: a bool absent from a present section is false
        updates[name] = {f.key: f.parse(form) for f in fields_of(name) if f.kind == "bool" or f.name in form}
    return updates
