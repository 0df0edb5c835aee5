"""Inspection jobs wired end to end: a real uvicorn server, a stock pymodbus client, the real face
detector on generated frames, a job with two regions; verdicts, registers, counters, archive and
dataset from the live run."""

from __future__ import annotations

import dataclasses
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pymodbus.client import ModbusTcpClient

from appliance.api.ui import yields
from appliance.inspection.archive import JPEG_QUALITY
from appliance.pipeline.results import Result, Timings
from appliance.plc.payloads import Judged, encode, result_payload
from appliance.plc.registers import (
    COIL_RESET_COUNTERS,
    COIL_TRIGGER,
    COUNTER_WORDS,
    DI_BUSY,
    DI_PASS,
    DI_RESULT_VALID,
    DISCRETE_INPUTS,
    HR_JOB_NUMBER,
    INPUT_REGISTERS,
    IR_COUNTERS_JOB,
    IR_COUNTERS_TOTAL,
    IR_ERROR_CODE,
    IR_JOB,
    IR_NG_REGION,
    IR_PASS_BITS,
    IR_REASON_CODE,
    IR_REGIONS,
    IR_RESULT_JOB,
    IR_SEQUENCE,
)
from tests.conftest import LiveServer, config_for, free_port, start_server
from tests.test_inspection_rules import frame, job_spec

UNIT = 1
WAIT_S = 20.0


class Plc:
    def __init__(self, port: int) -> None:
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
        assert self.client.connect()

    def inputs(self) -> list[bool]:
        reply = self.client.read_discrete_inputs(0, count=DISCRETE_INPUTS, device_id=UNIT)
        assert not reply.isError(), reply
        return list(reply.bits[:DISCRETE_INPUTS])

    def registers(self) -> list[int]:
        reply = self.client.read_input_registers(0, count=INPUT_REGISTERS, device_id=UNIT)
        assert not reply.isError(), reply
        return list(reply.registers)

    def coil(self, address: int) -> None:
        assert not self.client.write_coil(address, True, device_id=UNIT).isError()

    def until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.01)
        raise AssertionError(f"PLC view stayed {self.inputs()} {self.registers()[:14]}")

    def trigger(self) -> list[int]:
        before = self.registers()[IR_SEQUENCE]
        self.coil(COIL_TRIGGER)
        self.until(lambda: self.inputs()[DI_RESULT_VALID] and self.registers()[IR_SEQUENCE] != before)
        return self.registers()


def block(registers: list[int], start: int) -> dict[str, int]:
    """A counter block as numbers (registers.counter_words)."""
    words = registers[start : start + COUNTER_WORDS]

    def double(i: int) -> int:
        return (words[i] << 16) | words[i + 1]

    names = ("triggers", "ok", "ng", "errors", "missed")
    out = {name: double(2 * i) for i, name in enumerate(names)}
    out["yield"] = words[10]
    out["min_us"], out["avg_us"], out["max_us"] = double(11), double(13), double(15)
    out["reset_at"] = double(17)
    return out


def jpeg_size(image: np.ndarray) -> int:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return len(data)


@pytest.fixture
def frames(astronaut: np.ndarray) -> dict[str, np.ndarray]:
    crop = np.ascontiguousarray(astronaut[20:260, 110:350])
    return {"ok": frame(crop, 0), "ng": frame(crop, 0, 3)}  # NG: a face in region 2 (forbidden)


@pytest.fixture
def line(data_dir: Path, tmp_path: Path, frames: dict[str, np.ndarray]) -> Iterator[tuple[LiveServer, Plc]]:
    """The appliance on a triggered folder source holding the NG frame, Modbus on, snapshots kept."""
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "part.png"), frames["ng"])
    port = free_port()
    quota = jpeg_size(frames["ng"]) + jpeg_size(frames["ok"]) + jpeg_size(frames["ok"]) // 2
    extra = (
        'snapshots = "all"\n'  # still in config_for's [store]
        f'[source]\nkind = "folder"\npath = "{folder}"\nmode = "triggered"\n'
        f'[plc]\nmodbus_enabled = true\nmodbus_host = "127.0.0.1"\nmodbus_port = {port}\n'
        f"[archive]\nquota_bytes = {quota}\n"
        "[dataset]\nband_low = 0.0\nband_high = 0.0\n"
    )
    server = start_server(config_for(data_dir, extra))
    server.setup()
    plc = Plc(port)
    try:
        yield server, plc
    finally:
        plc.client.close()
        server.stop()


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def save_job(server: LiveServer, **snapshot: Any) -> dict[str, Any]:
    spec = {**job_spec(), "snapshot": snapshot or {"keep": "all", "ok_sample_rate": 1.0}}
    reply = server.client().put("/api/v1/inspection/jobs/7", json=spec)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def test_job_by_modbus_verdict_bits_reason_counters_reset(
    line: tuple[LiveServer, Plc], frames: dict[str, np.ndarray]
) -> None:
    server, plc = line
    api = server.client()
    assert save_job(server)["version"] == 1
    assert plc.registers()[IR_JOB] == 0

    assert not plc.client.write_register(HR_JOB_NUMBER, 7, device_id=UNIT).isError()
    plc.until(lambda: plc.registers()[IR_JOB] == 7 and not plc.inputs()[DI_BUSY])
    assert plc.registers()[IR_ERROR_CODE] == 0
    assert api.get("/api/v1/inspection/jobs").json()["active"] == 7

    registers = plc.trigger()  # the source's frame: a face in region 1 and one in region 2
    assert not plc.inputs()[DI_PASS]
    assert registers[IR_RESULT_JOB] == 7 and registers[IR_REGIONS] == 2
    assert registers[IR_PASS_BITS] == 0b01  # region 1 passed, region 2 did not
    assert registers[IR_REASON_CODE] == 2 and registers[IR_NG_REGION] == 2  # forbidden label, region 2

    answer = api.post("/api/v1/trigger", content=png(frames["ok"]), headers={"content-type": "image/png"})
    assert answer.status_code == 200, answer.text
    ok = answer.json()
    assert ok["ok"] is True and ok["job"] == 7 and ok["pass_bits"] == 0b11 and ok["reason_code"] == 0
    assert [r["ok"] for r in ok["regions"]] == [True, True]

    plc.until(lambda: block(plc.registers(), IR_COUNTERS_JOB)["triggers"] == 2)  # rewritten every 0.25 s
    counters = block(plc.registers(), IR_COUNTERS_JOB)
    assert {k: counters[k] for k in ("triggers", "ok", "ng", "errors", "missed")} == {
        "triggers": 2, "ok": 1, "ng": 1, "errors": 0, "missed": 0,
    }  # fmt: skip
    assert counters["yield"] == 5000  # 50.00 %
    assert 0 < counters["min_us"] <= counters["avg_us"] <= counters["max_us"]
    assert block(plc.registers(), IR_COUNTERS_TOTAL)["triggers"] == 2
    rest = api.get("/api/v1/inspection/counters").json()
    assert rest["active_job"] == 7 and rest["total"]["ng"] == 1 and rest["jobs"][0]["yield_pct"] == 50.0

    stored = api.get("/api/v1/results", params={"limit": 2}).json()["items"]
    ng_row = next(r for r in stored if not r["verdict"]["ok"])
    assert ng_row["verdict"]["reasons"] == ["region 2: forbidden label face"]
    per_minute = yields.counts(server.services.reader.path)  # the Inspection page's yield chart
    assert sum(j for j, _ in per_minute) == 2 and sum(ok for _, ok in per_minute) == 1

    before = rest["total"]["reset_at"]
    plc.coil(COIL_RESET_COUNTERS)
    plc.until(lambda: block(plc.registers(), IR_COUNTERS_TOTAL)["triggers"] == 0)
    after = api.get("/api/v1/inspection/counters").json()["total"]
    assert after["triggers"] == 0 and after["reset_at"] >= before
    assert plc.client.read_coils(COIL_RESET_COUNTERS, count=1, device_id=UNIT).bits[0] is False

    plc.trigger()
    assert api.get("/api/v1/inspection/counters").json()["total"]["ng"] == 1
    reset = api.post("/api/v1/inspection/counters/reset", json={})
    assert reset.status_code == 200 and reset.json()["job"] == 0
    assert api.get("/api/v1/inspection/counters").json()["total"]["triggers"] == 0
    assert api.post("/api/v1/inspection/counters/reset", json={"job": 1000}).status_code == 400


def archived(server: LiveServer) -> list[str]:
    return sorted(p.name for p in (server.services.config.data_dir / "archive").glob("*.jpg"))


def test_archive_keeps_ng_first_and_the_dataset_exports_the_live_run(
    line: tuple[LiveServer, Plc], frames: dict[str, np.ndarray]
) -> None:
    server, plc = line
    api = server.client()
    save_job(server)
    assert api.post("/api/v1/inspection/jobs/7/activate").json()["active"] == 7
    ng = plc.trigger()
    assert ng[IR_REASON_CODE] == 2
    for _ in range(3):
        answer = api.post("/api/v1/trigger", content=png(frames["ok"]), headers={"content-type": "image/png"})
        assert answer.json()["ok"] is True
    feeder = server.services.feeder
    assert feeder is not None
    deadline = time.monotonic() + WAIT_S
    while feeder.archived < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    names = archived(server)
    assert feeder.archived == 4 and feeder.dropped == 0
    assert [n.split("_")[1:3] for n in names] == [["job007", "NG"], ["job007", "OK"]]  # NG kept, newest OK
    archive = server.services.archive
    assert archive is not None and archive.used_bytes() <= archive.quota_bytes

    # the NG result is a hard example; an operator flags one OK result as right
    rows = api.get("/api/v1/results", params={"limit": 4}).json()["items"]
    ok_row = next(r for r in rows if r["verdict"]["ok"])
    flagged = api.post("/api/v1/dataset/flags", json={"result_id": ok_row["id"], "flag": "right"})
    assert flagged.status_code == 201, flagged.text
    assert flagged.json()["reason"] == "right"
    assert api.post("/api/v1/dataset/flags", json={"result_id": 10**9, "flag": "right"}).status_code == 404
    assert api.post("/api/v1/dataset/flags", json={"result_id": 1, "flag": "maybe"}).status_code == 400

    reply = api.get("/api/v1/dataset/export", params={"format": "coco"})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.content)) as bundle:
        coco = json.loads(bundle.read("annotations.json"))
        assert len([n for n in bundle.namelist() if n.startswith("images/") and n.endswith(".jpg")]) == 2
    by_seq = {r["seq"]: r for r in rows}
    assert len(coco["images"]) == 2
    for image in coco["images"]:
        seq = int(image["file_name"].split("-")[1].split(".")[0])
        boxes = sorted(a["bbox"] for a in coco["annotations"] if a["image_id"] == image["id"])
        expected = sorted(
            [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]]
            for d in by_seq[seq]["detections"]
        )
        assert np.allclose(boxes, expected, atol=0.2), (boxes, expected)
    yolo = api.get("/api/v1/dataset/export", params={"format": "yolo"})
    with zipfile.ZipFile(io.BytesIO(yolo.content)) as bundle:
        assert bundle.read("classes.txt").decode().split() == ["face"]
    assert api.get("/api/v1/dataset/export", params={"format": "voc"}).status_code == 400


def test_job_rest_crud_import_export_and_refusals(line: tuple[LiveServer, Plc]) -> None:
    server, _ = line
    api = server.client()
    bad = api.put("/api/v1/inspection/jobs/7", json={**job_spec(), "regions": []})
    assert bad.status_code == 400 and "regions" in bad.json()["error"]
    missing_model = {**job_spec(), "model": {"name": "face", "version": 9}}
    assert api.put("/api/v1/inspection/jobs/8", json={**missing_model, "number": 8}).status_code == 201
    refused = api.post("/api/v1/inspection/jobs/8/activate")
    assert refused.status_code == 404 and "face" in refused.json()["error"]
    assert api.get("/api/v1/inspection/jobs").json()["active"] == 0  # nothing changed
    save_job(server)
    exported = api.get("/api/v1/inspection/export")
    assert [j["number"] for j in exported.json()["jobs"]] == [7, 8]
    assert api.delete("/api/v1/inspection/jobs/8").status_code == 204
    imported = api.post("/api/v1/inspection/import", content=exported.content)
    assert imported.status_code == 201
    assert imported.json()["imported"] == [{"number": 7, "version": 2}, {"number": 8, "version": 1}]
    assert api.post("/api/v1/inspection/jobs/7/activate").status_code == 200
    assert api.delete("/api/v1/inspection/jobs/7").status_code == 409
    assert api.get("/api/v1/inspection/jobs/7", params={"version": 1}).json()["versions"] == [1, 2]
    assert api.get("/api/v1/inspection/jobs/1000").status_code == 400
    reader = server.client(token="")
    assert reader.get("/api/v1/inspection/jobs").status_code == 401
    assert "appliance_inspection_triggers_total" in api.get("/metrics").text


def test_mqtt_and_webhook_payloads_carry_the_job_verdict() -> None:
    verdict = {
        "job": 7, "job_version": 2, "ok": False, "pass_bits": 1, "reason_code": 2, "ng_region": 2,
        "reasons": ["region 2: forbidden label face"],
        "regions": [{"region": 1, "name": "a", "ok": True, "count": 1, "reasons": []},
                    {"region": 2, "name": "b", "ok": False, "count": 1,
                     "reasons": ["region 2: forbidden label face"]}],
    }  # fmt: skip
    result = Result(
        9, 9, 1.0, "line", "face", 1, "detect", "litert", "face", 0, 0.9, 2, (), Timings(1, 1, 1, 3)
    )
    judged = Judged(dataclasses.replace(result, verdict=verdict), ok=False)
    payload = result_payload(judged)
    assert {k: payload[k] for k in ("job", "job_version", "pass_bits", "reason_code", "ng_region")} == {
        "job": 7, "job_version": 2, "pass_bits": 1, "reason_code": 2, "ng_region": 2,
    }  # fmt: skip
    assert payload["reasons"] == ["region 2: forbidden label face"] and len(payload["regions"]) == 2
    assert json.loads(encode(judged))["reason_code"] == 2
    plain = result_payload(Judged(result, ok=True))  # no job: zeros and empty lists, same fields
    assert (
        plain["job"] == 0
        and plain["pass_bits"] == 0
        and plain["reasons"] == []
        and set(plain) == set(payload)
    )
