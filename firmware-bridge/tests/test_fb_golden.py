"""Golden frames: Python encode/decode against golden/frames.json, docs in sync, and the C host tests."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from firmware_bridge import golden
from firmware_bridge.codec import Decoder, decode_frame, encode, encode_raw
from firmware_bridge.messages import MessageType, SensorFrame

ROOT = Path(__file__).resolve().parents[1]  # firmware-bridge/
GOLDEN_JSON = ROOT / "golden" / "frames.json"
PROTOCOL_MD = ROOT / "PROTOCOL.md"
CASES: list[dict[str, Any]] = json.loads(GOLDEN_JSON.read_text(encoding="utf-8"))["cases"]


def test_golden_files_are_up_to_date() -> None:
    assert GOLDEN_JSON.read_text(encoding="utf-8") == golden.render_json(), (
        "golden/frames.json is stale: run python -m firmware_bridge.golden --write"
    )
    document = PROTOCOL_MD.read_text(encoding="utf-8")
    assert golden.splice_markdown(document, golden.render_markdown()) == document, (
        "PROTOCOL.md worked examples are stale: run python -m firmware_bridge.golden --write"
    )
    assert golden.main(["--json", str(GOLDEN_JSON), "--protocol", str(PROTOCOL_MD)]) == 0


def test_golden_cover_every_message_type() -> None:
    assert {case["type"] for case in CASES} == {t.name for t in MessageType}
    assert len({case["name"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_golden_frame(case: dict[str, Any]) -> None:
    message = golden.from_fields(case["type"], case["fields"], case["seq"])
    wire = bytes.fromhex(case["wire_hex"])
    raw = bytes.fromhex(case["raw_hex"])
    assert encode(message) == wire
    assert encode_raw(message) == raw
    assert decode_frame(raw) == message
    decoder = Decoder()
    assert decoder.feed(wire) == [message]
    assert decoder.stats.errors == 0
    assert int(message.TYPE) == case["type_code"] == raw[1]
    if isinstance(message, SensorFrame):
        np.testing.assert_array_equal(message.to_array().ravel(), np.array(case["fields"]["values"]))


def test_c_firmware_host_tests() -> None:
    """Builds firmware/ with gcc (-std=c99 -Wall -Wextra -Werror -pedantic) and runs its unit tests."""
    assert shutil.which("make") and shutil.which("gcc"), "make and gcc are required for the C host tests"
    proc = subprocess.run(
        ["make", "-C", str(ROOT / "firmware"), "test", f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert " 0 failures" in output, output
    assert "golden   ok" in output and "session  ok" in output, output


def test_c_session_fuzz_smoke() -> None:
    """The C session fuzz target (every 1.1 receive rule) on mutated golden frames under ASan/UBSan;
    `make -C firmware-bridge/firmware fuzz` runs the same target under libFuzzer where clang exists."""
    proc = subprocess.run(
        [
            "make",
            "-C",
            str(ROOT / "firmware"),
            "fuzz-smoke",
            f"PYTHON={sys.executable}",
            "FUZZ_ITERATIONS=20000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "no invariant violated" in output, output
