from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import Config, ConfigError, documented_keys, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_empty_file_gives_every_default() -> None:
    assert parse_config("") == Config()
    assert Config().server.host == "127.0.0.1"
    assert Config().backend.order == ("litert",)


def test_values_are_read_and_typed() -> None:
    config = parse_config(
        '[server]\nport = 9000\n[backend]\norder = ["litert"]\nthreads = 1\n[store]\nmax_age_days = 7'
    )
    assert config.server.port == 9000
    assert config.backend.threads == 1
    assert config.store.max_age_days == 7.0
    assert isinstance(config.store.max_age_days, float)


def test_every_problem_is_reported_with_key_and_line() -> None:
    text = "\n".join(
        [
            "[server]",
            'port = "eighty"',  # line 2: wrong type
            "colour = 3",  # line 3: unknown key
            "[source]",
            'kind = "webcam"',  # line 5: not a choice
            "[nonsense]",  # line 6: unknown section
            "[store]",
            "batch_size = 0",  # line 8: below minimum
        ]
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "x.toml")
    found = {(p.key, p.line) for p in caught.value.problems}
    assert found == {
        ("server.port", 2),
        ("server.colour", 3),
        ("source.kind", 5),
        ("nonsense", 6),
        ("store.batch_size", 8),
    }
    messages = {p.key: p.message for p in caught.value.problems}
    assert "whole number" in messages["server.port"]
    assert "webcam" in messages["source.kind"]
    assert "unknown key" in messages["server.colour"]


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[source]\nkind = "video"\n[backend]\norder = ["litert", "gpu"]')
    keys = {p.key for p in caught.value.problems}
    assert keys == {"source.path", "backend.order"}


def test_invalid_toml_names_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[server]\nport = = 3\n")
    assert caught.value.problems[0].line == 2


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_check_config_cli_lists_all_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = 0\n[log]\nlevel = "LOUD"\n')
    assert main(["check-config", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2: server.port" in out
    assert f"{path}:4: log.level" in out
    assert "2 problem(s)" in out
    good = tmp_path / "good.toml"
    good.write_text("[server]\nport = 8081\n")
    assert main(["check-config", str(good)]) == 0


def test_every_key_is_documented() -> None:
    docs = (ROOT / "docs" / "config.md").read_text()
    headings = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", docs, re.MULTILINE))
    keys = {key for key, _, _ in documented_keys()}
    assert keys - headings == set(), "keys missing from docs/config.md"
    assert headings - keys == set(), "docs/config.md documents keys that do not exist"
