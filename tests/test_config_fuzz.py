"""check-config never tracebacks: hypothesis-driven files (deep nesting, huge numbers, nan/inf/1e300,
wrong types, bad TOML, mutations of a valid file) always give a clean problem list, and serve's loading
agrees with check-config on every one of them. PATCH proposals get the same treatment."""

from __future__ import annotations

import dataclasses
import math
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.cli import main
from appliance.config import Config, ConfigError, documented_keys, load_config, parse_config, sections
from appliance.config.file import ConfigFile

VALID = """# a valid file
[server]
port = 8080
[source]
kind = "video"
path = "/tmp/x.mp4"
rate = 2.5
[store]
max_age_days = 7.0
max_rows = 1000
[inspection]
pass_labels = ["ok", "good"]
min_score = 0.5
[auth]
session_hours = 8.0
[backend]
order = ["litert"]
"""

KEYS = [key for key, _, _ in documented_keys()]
FLOAT_KEYS = [key for key, _, default in documented_keys() if isinstance(default, float)]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def nested(depth: int, kind: str) -> str:
    return ("[" * depth + "1" + "]" * depth) if kind == "array" else ("{a = " * depth + "1" + "}" * depth)


SPECIAL_NUMBERS = st.sampled_from(
    ["nan", "inf", "-inf", "+nan", "1e300", "-1e300", "1e-320", "9" * 5000, "-" + "9" * 5000, "0x" + "f" * 40]
)
SCALARS = st.one_of(
    SPECIAL_NUMBERS,
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=string.printable, max_size=30).map(
        lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'
    ),
    st.sampled_from(["true", "false", "[]", "{}", '["a", 1]', "1979-05-27T07:32:00Z", "[[1], [2]]"]),
    st.builds(nested, st.integers(1, 3000), st.sampled_from(["array", "table"])),
)


@st.composite
def toml_files(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        key = draw(st.sampled_from([*KEYS, "server.nonsense", "nosuch.key"]))
        section, name = key.split(".", 1)
        lines.append(f"[{section}]")
        lines.append(f"{name} = {draw(SCALARS)}")
    return "\n".join(lines) + "\n"


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        if action == "insert":
            text = text[:at] + draw(st.text(alphabet='[]{}="#.\n 019ae', min_size=1, max_size=5)) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 10)) :]
        else:
            text = text[:at] + text[at : at + 40] + text[at:]
    return text


def check_clean(text: str, tmp_path: Path) -> None:
    """parse_config answers a Config or a ConfigError with printable problems; check-config and the
    loader used by `appliance serve` give the same verdict."""
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    try:
        parse_config(text)
        ok = True
    except ConfigError as err:
        assert err.problems and all(str(p) for p in err.problems)
        ok = False
    assert main(["check-config", str(path)]) == (0 if ok else 1)
    try:
        load_config(path)
        served = True
    except ConfigError:
        served = False
    assert served == ok


@FUZZ
@given(text=toml_files())
def test_generated_files_never_traceback(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_clean(text, tmp_path)
    capsys.readouterr()


@FUZZ
@given(text=mutated())
def test_mutated_files_never_traceback(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_clean(text, tmp_path)
    capsys.readouterr()


@pytest.mark.parametrize("text", [f"a = {nested(50_000, 'array')}\n", f"a = {nested(50_000, 'table')}\n"])
def test_very_deep_nesting_is_one_problem(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.problems[0].key == "(file)"


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300"])
def test_every_float_key_refuses_non_finite_and_absurd_values(key: str, value: str) -> None:
    section, name = key.split(".", 1)
    with pytest.raises(ConfigError) as caught:
        parse_config(f"[{section}]\n{name} = {value}\n")
    assert key in {p.key for p in caught.value.problems}


def test_huge_integers_are_refused_by_name() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[store]\nmax_rows = " + "9" * 4000 + "\n")
    assert [p.key for p in caught.value.problems] == ["store.max_rows"]
    assert len(str(caught.value)) < 300
    with pytest.raises(ConfigError) as too_long:
        parse_config("[store]\nmax_rows = " + "9" * 5000 + "\n")
    assert too_long.value.problems[0].key == "(file)"


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def proposals(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(JSON)
    known = sections()
    out: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from([*known, "bogus"]))
        fields = [f.name for f in dataclasses.fields(known[name])] if name in known else ["x"]
        out[name] = {draw(st.sampled_from([*fields, "bogus"])): draw(JSON)}
    return out


@settings(max_examples=300, deadline=None)
@given(updates=proposals())
def test_config_proposals_never_traceback(updates: Any) -> None:
    file = ConfigFile(Config(), None)
    try:
        change = file.propose(updates)
    except ConfigError as err:
        assert err.problems and all(str(p) for p in err.problems)
        return
    parsed = parse_config(change.text)  # what would be written is a file serve accepts
    for section in sections():
        for f in dataclasses.fields(getattr(parsed, section)):
            value = getattr(getattr(parsed, section), f.name)
            assert not isinstance(value, float) or math.isfinite(value)
