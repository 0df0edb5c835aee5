"""The serial path end to end: simulator -> pty -> appliance -> SQLite, photo-eye triggers, rejects,
and unplug/replug without restarting the appliance. Real pty pairs, real models, real SQLite."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from firmware_bridge import DeliveryStatus, FdTransport, Verdict, VirtualPort
from firmware_bridge.simulator import SensorMode, Simulator, SimulatorConfig, device_session_config

from appliance.models.registry import Registry
from appliance.services import Services
from appliance_tools.demo.video import write_demo_video
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
        wait_for(lambda: services.link.status()["peer"] is None)  # type: ignore[union-attr]
        assert services.link.status()["peer_heartbeat"] is None
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


# ------------------------------------------------------------------ deadlines, BUSY, ref_seq, time
def triggered_camera(data_dir: Path, vport: VirtualPort, tmp_path: Path, extra: str = "") -> Services:
    video = write_demo_video(tmp_path / "cam.mp4", frames=20)
    return start(
        data_dir,
        f'[source]\nkind = "video"\nname = "cam"\npath = "{video}"\nmode = "triggered"\n'
        f'[serial]\nport = "{vport.path}"\nreject_output = 1\nreject_when = "pass"\n{extra}'
        '[inspection]\npass_labels = ["face"]\n',
    )


def test_a_device_busy_for_20_s_gets_no_stale_result_or_io_set(
    data_dir: Path, vport: VirtualPort, tmp_path: Path
) -> None:
    """Issue 10: RESULT/IO_SET queued while the device answered BUSY arrived in a burst up to 17 s
    late, rejecting the wrong parts. Now each has a deadline from its trigger and is dropped when late."""
    sim = simulator(vport, SensorMode.IDLE, rate=0.0, triggers=0.3)
    services = triggered_camera(data_dir, vport, tmp_path, "io_deadline_ms = 500\n")
    try:
        wait_for(lambda: sim.io_received >= 2 and sim.results_received >= 2)
        sim.set_busy(True)
        busy_from = time.monotonic()
        wait_for(lambda: time.monotonic() - busy_from >= 20.0 and sim.busy_refusals >= 40, timeout=40)
        sim.set_busy(False)
        released = time.monotonic()
        wait_for(lambda: any(at > released + 1.0 for _, at in sim.io_log), timeout=15)  # working again
        late_io = [at for _, at in sim.io_log if released <= at <= released + 1.0]
        fresh_triggers = [d for d in sim.triggers if (sim.trigger_time(d.seq) or 0) >= released - 0.5]
        assert len(late_io) <= len(fresh_triggers) + 1, "a burst of stale IO_SETs after BUSY"
        for result, at in sim.results:
            fired = sim.trigger_time(result.ref_seq)
            assert fired is not None, "every RESULT names the TRIGGER it answers"
            if at >= released:
                assert at - fired <= 1.0 + 0.5, f"RESULT for trigger {result.ref_seq} {at - fired:.1f} s late"
        assert services.link is not None
        counters = services.link.status()["counters"]
        assert counters["expired"] >= 40 and counters["nacks_rx"] >= 40
    finally:
        services.stop()
        sim.stop()


def test_100_triggers_at_33_per_s_each_acked_one_runs(
    data_dir: Path, vport: VirtualPort, tmp_path: Path
) -> None:
    """A TRIGGER is ACKed only when it is queued for inspection (else NACKed BUSY and retried by the
    device), so every ACKed TRIGGER gets exactly one RESULT naming it."""
    sim = simulator(vport, SensorMode.IDLE, rate=0.0, triggers=0.0)
    services = triggered_camera(data_dir, vport, tmp_path, "result_deadline_ms = 600000\n")
    try:
        assert sim.session.wait_ready(10.0)
        deliveries = []
        for _ in range(100):
            deliveries.append(sim.send_trigger())
            time.sleep(1 / 33)  # the photo-eye's pace (the scenario), nothing is asserted on it
        wait_for(lambda: all(d.done for d in deliveries), timeout=30)
        acked = sorted(d.seq for d in deliveries if d.status is DeliveryStatus.ACKED)
        assert len(acked) >= 64  # at least a full queue's worth got in
        wait_for(lambda: sorted(r.ref_seq for r, _ in sim.results) == acked, timeout=120)
        assert services.sink is not None and services.sink.trigger_errors == 0
    finally:
        services.stop()
        sim.stop()


def test_results_all_sends_each_result_once_naming_what_it_answers(
    data_dir: Path, registry: Registry, vport: VirtualPort
) -> None:
    registry.activate("vibration")
    sim = simulator(vport, SensorMode.NORMAL, rate=8.0, triggers=0.4)
    services = start(
        data_dir,
        f'[source]\nkind = "serial"\nname = "shaker"\n[serial]\nport = "{vport.path}"\nresults = "all"\n',
    )
    try:
        wait_for(lambda: sim.results_received >= 30 and len(sim.triggers) >= 5, timeout=30)
        sent = sim.results
        ids = [r.result_id for r, _ in sent]
        assert len(ids) == len(set(ids)), "a result was sent twice"
        frames = {seq for seq, _, _ in sim.sent_frames}
        triggers = {d.seq for d in sim.triggers}
        refs = [r.ref_seq for r, _ in sent]
        assert all(ref in frames or ref in triggers for ref in refs)
        assert any(ref in triggers for ref in refs) and any(ref in frames for ref in refs)
        assert all(r.verdict is Verdict.PASS for r, _ in sent)  # normal running passes (any label)
    finally:
        services.stop()
        sim.stop()


def test_device_clock_an_hour_off_gets_sensor_timestamps_right(
    data_dir: Path, registry: Registry, vport: VirtualPort
) -> None:
    """Frames are stamped with the device clock (an hour off the host's) of their first sample; time
    sync maps it to host time. On a 115200-baud wire a window arrives >= 135 ms after it was taken,
    so an arrival-time stamp would be visibly wrong."""
    registry.activate("vibration")
    sim = Simulator(
        FdTransport(vport.master_fd),
        SimulatorConfig(
            rate_hz=4.0,
            trigger_every_s=0.0,
            mode=SensorMode.IDLE,
            seed=3,
            session=device_session_config(clock_offset_ms=3_600_000),
            uart_baud=115200,
        ),
    )
    sim.start()
    services = start(
        data_dir, f'[source]\nkind = "serial"\nname = "shaker"\n[serial]\nport = "{vport.path}"\n'
    )
    try:
        wait_for(lambda: services.pipeline.published >= 12, timeout=30)
    finally:
        services.stop()
        sim.stop()
    to_wall = time.time() - time.monotonic()
    generated = sorted(at + to_wall for _, _, at in sim.sent_frames)
    conn = sqlite3.connect(data_dir / "results.db")
    stamps = [row[0] for row in conn.execute("SELECT ts FROM results WHERE source = 'shaker' ORDER BY ts")]
    errors = sorted(min(abs(ts - g) for g in generated) for ts in stamps[4:])  # after the first syncs
    # an arrival-time stamp would be >= 0.135 s late (the window's wire time at 115200 baud)
    assert errors and errors[len(errors) // 2] < 0.1, f"median stamp error {errors[len(errors) // 2]:.3f} s"


def test_the_serial_demo_rejects_only_faults(data_dir: Path, registry: Registry, vport: VirtualPort) -> None:
    """Issue 17: `make run-serial` pulsed the reject output on normal running (30/30 "fault").
    With the demo's rules, normal running and idle pass; only the fault mode is rejected."""
    registry.activate("vibration")
    sim = simulator(vport, SensorMode.NORMAL, rate=10.0)
    services = start(
        data_dir,
        f'[source]\nkind = "serial"\nname = "shaker"\n[serial]\nport = "{vport.path}"\nresults = "all"\n'
        'reject_output = 0\nreject_when = "fail"\n[inspection]\npass_labels = ["idle", "normal"]\n',
    )
    try:
        wait_for(lambda: sim.results_received >= 20, timeout=30)
        verdicts = [r.verdict for r, _ in sim.results]
        assert verdicts.count(Verdict.FAIL) <= 1, (
            f"{verdicts.count(Verdict.FAIL)} of {len(verdicts)} rejected"
        )
        assert len(sim.io_log) <= 1
    finally:
        services.stop()
        sim.stop()


def test_a_10_device_still_works_with_the_11_appliance(
    data_dir: Path, registry: Registry, vport: VirtualPort
) -> None:
    """PROTOCOL.md section 13: the simulator in 1.0 mode streams, triggers and takes RESULTs; the
    appliance sends it no 1.1-only message and stamps windows with their arrival time."""
    registry.activate("vibration")
    sim = Simulator(
        FdTransport(vport.master_fd),
        SimulatorConfig(
            rate_hz=10.0, trigger_every_s=0.3, mode=SensorMode.IDLE, seed=3, session=device_session_config(0)
        ),
    )
    sim.start()
    services = start(
        data_dir, f'[source]\nkind = "serial"\nname = "shaker"\n[serial]\nport = "{vport.path}"\n'
    )
    try:
        wait_for(lambda: services.pipeline.published >= 5 and sim.results_received >= 2, timeout=30)
        assert services.link is not None
        status = services.link.status()
        assert status["protocol"] == "1.0" and status["peer"]["minor_version"] is None
        assert status["clock_offset_ms"] is None and status["peer_status"] is None
        assert sim.session.stats().counters.nacks_tx == 0  # nothing it did not understand
        result = sim.last_result
        assert result is not None and result.ref_seq in {d.seq for d in sim.triggers}
    finally:
        services.stop()
        sim.stop()
