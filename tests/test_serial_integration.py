"""The serial path end to end: simulator -> pty -> appliance -> SQLite, photo-eye triggers, rejects,
and unplug/replug without restarting the appliance. Real pty pairs, real models, real SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from firmware_bridge import FdTransport, Verdict, VirtualPort
from firmware_bridge.simulator import SensorMode, Simulator, SimulatorConfig

from appliance.demo.video import write_demo_video
from appliance.models.registry import Registry
from appliance.services import Services
from tests.conftest import config_for, wait_for


@pytest.fixture
def vport(tmp_path: Path) -> Iterator[VirtualPort]:
    port = VirtualPort(tmp_path / "ttyFB0")
    port.open()
    yield port
    port.close()
    port.remove_link()


def simulator(port: VirtualPort, mode: SensorMode, rate: float = 20.0, triggers: float = 0.0) -> Simulator:
    sim = Simulator(
        FdTransport(port.master_fd),
        SimulatorConfig(rate_hz=rate, trigger_every_s=triggers, mode=mode, seed=3),
    )
    sim.start()
    return sim


def start(data_dir: Path, extra: str) -> Services:
    services = Services.build(config_for(data_dir, extra))
    services.start()
    return services


def test_sensor_windows_are_classified_and_logged(
    data_dir: Path, registry: Registry, vport: VirtualPort
) -> None:
    registry.activate("vibration")
    sim = simulator(vport, SensorMode.FAULT)
    services = start(
        data_dir,
        f'[source]\nkind = "serial"\nname = "shaker"\n[serial]\nport = "{vport.path}"\n'
        'results = "all"\nreject_output = 2\n[inspection]\npass_labels = ["idle", "normal"]\n',
    )
    try:
        wait_for(lambda: services.pipeline.published >= 10)
        wait_for(lambda: sim.last_result is not None and sim.results_received >= 5)
        last = sim.last_result
        assert last is not None and last.verdict is Verdict.FAIL and last.label == 2  # "fault"
        wait_for(lambda: services.sink is not None and services.sink.rejects >= 1)
        status = services.link.status() if services.link else {}
        assert status["state"] == "ready" and status["decoder"]["bad_crc"] == 0
    finally:
        services.stop()
        sim.stop()
    conn = sqlite3.connect(data_dir / "results.db")
    labels = [r[0] for r in conn.execute("SELECT label FROM results WHERE source = 'shaker'")]
    assert len(labels) >= 10 and labels.count("fault") >= 0.9 * len(labels)
    assert conn.execute("SELECT DISTINCT model FROM results").fetchall() == [("vibration",)]


def test_photo_eye_trigger_inspects_the_camera_frame(
    data_dir: Path, vport: VirtualPort, tmp_path: Path
) -> None:
    video = write_demo_video(tmp_path / "cam.mp4", frames=20)
    sim = simulator(vport, SensorMode.IDLE, rate=0.0, triggers=0.3)
    services = start(
        data_dir,
        f'[source]\nkind = "video"\nname = "cam"\npath = "{video}"\nmode = "triggered"\n'
        f'[serial]\nport = "{vport.path}"\nreject_output = 1\nreject_when = "pass"\n'
        '[inspection]\npass_labels = ["face"]\n',
    )
    try:
        wait_for(lambda: sim.results_received >= 2)
        result = sim.last_result
        assert result is not None and result.verdict is Verdict.PASS and result.label == 0
        assert result.ref_seq in {d.seq for d in sim.triggers}  # the answer names the trigger it answers
        assert result.score_permille > 500
        wait_for(lambda: services.sink is not None and services.sink.rejects >= 2)
        assert services.pipeline.source is not None and services.pipeline.source.name == "cam"
    finally:
        services.stop()
        sim.stop()
    conn = sqlite3.connect(data_dir / "results.db")
    rows = conn.execute("SELECT source, label FROM results").fetchall()
    assert len(rows) >= 2 and set(rows) == {("cam", "face")}


def test_unplug_and_replug_recover_without_restart(
    data_dir: Path, registry: Registry, vport: VirtualPort
) -> None:
    registry.activate("vibration")
    sim = simulator(vport, SensorMode.NORMAL)
    services = start(data_dir, f'[source]\nkind = "serial"\n[serial]\nport = "{vport.path}"\n')
    try:
        wait_for(lambda: services.pipeline.published >= 5)
        sim.stop()
        vport.close()  # unplug
        assert services.link is not None
        wait_for(lambda: services.link.state().value in ("lost", "reconnecting"))  # type: ignore[union-attr]
        before = services.pipeline.published
        vport.open()  # replug: a new pty behind the same path
        sim = simulator(vport, SensorMode.IDLE)
        wait_for(lambda: services.pipeline.published >= before + 5, timeout=30)
        assert services.bus.latest is not None and services.bus.latest.label == "idle"
        source = services.pipeline.source
        assert source is not None and source.status().reconnects >= 1
    finally:
        services.stop()
        sim.stop()
