"""Model activation is proven before the switch: real models, a real video source, a real server,
the real CLI. An unfit or corrupt model is refused and the running model stays; at start a broken
active model falls back to the last good one; frames that fail later are visible."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymodbus.client import ModbusTcpClient

from appliance.api.status import status_document
from appliance.api.ui.live import LiveFeed
from appliance.api.ui.state import ViewerSlots
from appliance.backends.registry import Backends
from appliance.cli import main
from appliance.config import PlcConfig
from appliance.errors import ModelRejected, error_code
from appliance.models.registry import Registry
from appliance.pipeline.proof import IMAGE, Sample, prove
from appliance.pipeline.runtime import ModelRuntime, RuntimeOptions
from appliance.plc.outputs import start_outputs, stop_outputs
from appliance.plc.registers import DI_ERROR, HR_MODEL_SLOT, IR_ERROR_CODE
from appliance.services import Services, open_registry
from appliance_tools.demo.video import write_demo_video
from tests.conftest import ADMIN_PASSWORD, LiveServer, config_for, free_port, start_server, wait_for
from tests.e2e.browser import logged_in_client


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_demo_video(tmp_path / "line.mp4", frames=30)


def video_config(data_dir: Path, video: Path, extra: str = "") -> str:
    return f'[source]\nkind = "video"\npath = "{video}"\n{extra}'


@pytest.fixture
def on_video(data_dir: Path, video: Path) -> Iterator[LiveServer]:
    server = start_server(config_for(data_dir, video_config(data_dir, video)))
    server.setup()
    wait_for(lambda: server.services.pipeline.published > 0)
    yield server
    server.stop()


def corrupt(registry: Registry, name: str) -> Path:
    """Overwrite a stored model file with bytes of the same size (a bad flash sector, a bad copy)."""
    manifest = registry.get(name)
    path = registry.version_dir(manifest.name, manifest.version) / manifest.file
    path.write_bytes(np.random.default_rng(7).bytes(path.stat().st_size))
    return path


def test_unfit_model_is_refused_over_the_api(on_video: LiveServer) -> None:
    services = on_video.services
    running = services.manager.current()
    reply = on_video.client().post("/api/v1/models/vibration/activate")
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert "vibration" in error and "latest frame" in error and "pre-processing" in error
    assert services.manager.current() is running
    active = services.registry.active()
    assert active is not None and active.name == "face"
    seen = services.pipeline.published
    wait_for(lambda: services.pipeline.published > seen)


def test_fit_model_is_switched_in(on_video: LiveServer) -> None:
    reply = on_video.client().post("/api/v1/models/selfie/activate")
    assert reply.status_code == 200, reply.text
    current = on_video.services.manager.current()
    assert current is not None and current.manifest.name == "selfie"


def test_corrupt_model_is_refused_over_the_api(on_video: LiveServer) -> None:
    corrupt(on_video.services.registry, "selfie")
    reply = on_video.client().post("/api/v1/models/selfie/activate")
    assert reply.status_code == 400 and "corrupt" in reply.json()["error"]
    current = on_video.services.manager.current()
    assert current is not None and current.manifest.name == "face"


def test_another_process_activating_an_unfit_model_is_refused(on_video: LiveServer) -> None:
    """`appliance models activate` from an old build (or state.json edited): the watcher proves it too,
    keeps the running model and points the registry back at it."""
    services = on_video.services
    open_registry(services.config.data_dir).activate("vibration")
    wait_for(lambda: services.manager.last_error is not None)
    assert "vibration" in (services.manager.last_error or "")
    current = services.manager.current()
    assert current is not None and current.manifest.name == "face"
    wait_for(lambda: (a := services.registry.active()) is not None and a.name == "face")


def test_cli_refuses_a_corrupt_model(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = open_registry(data_dir)
    state = (data_dir / "models" / "state.json").read_bytes()
    corrupt(registry, "selfie")
    assert main(["models", "activate", "selfie", "--data-dir", str(data_dir)]) == 1
    assert "corrupt" in capsys.readouterr().err
    assert (data_dir / "models" / "state.json").read_bytes() == state


def test_cli_refuses_an_unfit_model_for_the_configured_source(
    data_dir: Path, video: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\ndir = "{data_dir}"\n' + video_config(data_dir, video))
    state = (data_dir / "models" / "state.json").read_bytes()
    cli = [sys.executable, "-m", "appliance", "models", "activate", "--config", str(config)]
    refused = subprocess.run([*cli, "vibration"], check=False, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "vibration" in refused.stderr and "image" in refused.stderr
    assert (data_dir / "models" / "state.json").read_bytes() == state
    accepted = subprocess.run([*cli, "selfie"], check=False, capture_output=True, text=True, timeout=120)
    assert accepted.returncode == 0, accepted.stderr
    active = open_registry(data_dir).active()
    assert active is not None and active.name == "selfie"


def test_broken_active_model_at_start_falls_back_loudly(
    data_dir: Path, video: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = open_registry(data_dir)
    registry.activate("selfie")  # history: face, then selfie
    corrupt(registry, "selfie")
    services = Services.build(config_for(data_dir, video_config(data_dir, video)))
    with caplog.at_level(logging.ERROR):
        services.start()
    try:
        current = services.manager.current()
        assert current is not None and current.manifest.name == "face"
        status = status_document(services)
        assert "selfie" in status["model_error"] and "face" in status["model_error"]
        assert any("selfie" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
        active = registry.active()
        assert active is not None and active.name == "face"
        wait_for(lambda: services.pipeline.published > 0)
    finally:
        services.stop()


def test_failing_frames_show_in_status_log_and_live_view(
    data_dir: Path, video: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model that fails on every frame once running (installed here without its proof, as a model
    that passed it on one frame and fails on the next would be): status, log and live view say so."""
    services = Services.build(config_for(data_dir, video_config(data_dir, video)))
    services.start()
    try:
        manager = services.manager
        manifest = services.registry.get("vibration")
        with caplog.at_level(logging.WARNING):
            files = services.registry.files_of(manifest)
            manager._install(ModelRuntime(manifest, files, manager.options, manager.backends))
            wait_for(lambda: services.pipeline.faults.failing)
            wait_for(lambda: services.pipeline.faults.errors >= 5)
        frames = status_document(services)["pipeline"]["frames"]
        assert frames["failing"] and "tensor" in frames["last_error"]
        warnings = [r for r in caplog.records if "frames are failing" in r.getMessage()]
        assert 1 <= len(warnings) < frames["errors"]  # rate-limited: not one line per frame
        feed = LiveFeed(services, ViewerSlots(1))
        try:
            assert "tensor" in feed.waiting_text()
        finally:
            feed.close()
    finally:
        services.stop()


def test_candidate_proof_names_the_stage(registry: Registry) -> None:
    manifest = registry.get("vibration")
    options = RuntimeOptions(workers=1, ring=1)
    runtime = ModelRuntime(manifest, registry.files_of(manifest), options, Backends.default())
    try:
        with pytest.raises(ModelRejected, match="pre-processing"):
            prove(runtime, Sample(None, IMAGE))
    finally:
        runtime.close()


def test_dashboard_says_frames_are_failing(data_dir: Path, video: Path) -> None:
    server = start_server(config_for(data_dir, video_config(data_dir, video)))
    try:
        server.setup()
        services = server.services
        manager, manifest = services.manager, services.registry.get("vibration")
        files = services.registry.files_of(manifest)
        manager._install(ModelRuntime(manifest, files, manager.options, manager.backends))
        wait_for(lambda: services.pipeline.faults.failing)
        client = logged_in_client(server.url, ADMIN_PASSWORD)
        panel = client.get("/dashboard/panel", headers={"x-requested-with": "fetch"})
        assert panel.status_code == 200, panel.text
        assert 'id="frames-failing"' in panel.text and "tensor" in panel.text
    finally:
        server.stop()


def test_plc_job_change_to_an_unfit_model_is_refused(data_dir: Path, video: Path) -> None:
    """Modbus holding register 0 selects the vibration model on a video line: error code 4, the
    running model stays (the PLC's job change goes through the same proof)."""
    services = Services.build(config_for(data_dir, video_config(data_dir, video, 'mode = "triggered"\n')))
    services.start()
    plc = PlcConfig(
        modbus_enabled=True,
        modbus_host="127.0.0.1",
        modbus_port=free_port(),
        model_slots=("face", "vibration"),
    )
    outputs = start_outputs(services, plc)
    client = ModbusTcpClient("127.0.0.1", port=plc.modbus_port, timeout=5)
    try:
        assert client.connect()
        assert not client.write_register(HR_MODEL_SLOT, 2, device_id=1).isError()

        def error_bit() -> bool:
            reply = client.read_discrete_inputs(0, count=5, device_id=1)
            return not reply.isError() and bool(reply.bits[DI_ERROR])

        wait_for(error_bit)
        registers = client.read_input_registers(0, count=8, device_id=1).registers
        assert registers[IR_ERROR_CODE] == error_code(ModelRejected("x"))
        current = services.manager.current()
        assert current is not None and current.manifest.name == "face"
    finally:
        client.close()
        stop_outputs(outputs)
        services.stop()


def test_ui_activation_of_an_unfit_model_is_refused(on_video: LiveServer) -> None:
    client = logged_in_client(on_video.url, ADMIN_PASSWORD)
    reply = client.post(
        "/models/vibration/1/activate", data={"csrf": client.headers["x-csrf-token"]}, follow_redirects=True
    )
    assert reply.status_code == 200
    assert "does not run on" in reply.text and "now active" not in reply.text
    current = on_video.services.manager.current()
    assert current is not None and current.manifest.name == "face"


def test_damaged_registry_state_at_start_is_reported_not_fatal(data_dir: Path, video: Path) -> None:
    (data_dir / "models" / "state.json").write_text("{ not json")
    services = Services.build(config_for(data_dir, video_config(data_dir, video)))
    services.start()
    try:
        assert services.manager.current() is None
        assert "damaged" in (status_document(services)["model_error"] or "")
    finally:
        services.stop()
