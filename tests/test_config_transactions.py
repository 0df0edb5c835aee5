"""Config changes are transactions: every defect refused with a 4xx naming the key, the file byte-identical,
the running source and model unchanged; an accepted change keeps the operator's comments and order."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from appliance.api.app import create_app
from appliance.config import ConfigError, load_config
from appliance.services import Services
from appliance_tools.demo.video import write_demo_video
from tests.conftest import LiveServer, free_port, wait_for

HEADER = """# Line 1: the operator's own notes
# about this machine.

[data]
dir = "{data}"  # where results live

[source]
# the camera at station 3
kind = "video"
path = "{video}"
name = "station3"
mode = "continuous"   # explicit default, kept

[store]
flush_interval_ms = 20
max_rows = 1000000  # explicit default, kept
"""


@pytest.fixture
def served(data_dir: Path, tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    """A real uvicorn appliance started from a commented config file on a looping video source."""
    video = write_demo_video(tmp_path / "main.mp4", frames=30)
    path = tmp_path / "config.toml"
    path.write_text(HEADER.format(data=data_dir, video=video))
    services = Services.build(load_config(path), path)
    port = free_port()
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    live = LiveServer(f"http://127.0.0.1:{port}", services, server, thread)
    live.setup()
    wait_for(lambda: services.pipeline.published > 0)
    yield live, path
    live.stop()


def _patch(api: httpx.Client, raw: str) -> httpx.Response:
    """PATCH with a raw JSON text (json.dumps would refuse Infinity / NaN, a client may not)."""
    return api.patch("/api/v1/config", content=raw, headers={"content-type": "application/json"})


DEFECTS = {
    "missing video": ('{"source": {"path": "/nonexistent.mp4"}}', "source.path"),
    # Infinity, NaN and 4,000-digit numbers are not JSON (RFC 8259): refused by the body parser
    "infinite session": ('{"auth": {"session_hours": Infinity}}', "(body)"),
    "nan score": ('{"inspection": {"min_score": NaN}}', "(body)"),
    "huge session": ('{"auth": {"session_hours": 1e300}}', "auth.session_hours"),
    "huge number": ('{"store": {"max_age_days": 1e300}}', "store.max_age_days"),
    "unknown model": ('{"model": {"name": "no-such-model"}}', "model.name"),
    "wrong type": ('{"store": {"max_rows": "many"}}', "store.max_rows"),
    "unknown key": ('{"source": {"colour": "red"}}', "source.colour"),
    "source kind without path": ('{"source": {"kind": "folder", "path": ""}}', "source.path"),
    "nested value": ('{"source": {"name": {"a": [1, [2, [3]]]}}}', "source.name"),
    "huge integer": ('{"store": {"max_rows": ' + "9" * 4000 + "}}", "(body)"),
    "64-bit overflow": ('{"store": {"max_rows": ' + "9" * 25 + "}}", "store.max_rows"),
}


@pytest.mark.parametrize("name", list(DEFECTS))
def test_rejected_change_changes_nothing(served: tuple[LiveServer, Path], name: str) -> None:
    live, path = served
    raw, key = DEFECTS[name]
    before = path.read_bytes()
    services = live.services
    source, model = services.pipeline.source, services.manager.current()
    config = services.config
    reply = _patch(live.client(), raw)
    assert 400 <= reply.status_code < 500, reply.text
    body = reply.json()
    assert "error" in body
    if key != "(body)":
        assert key in {p["key"] for p in body["problems"]}, body
    else:
        assert "JSON" in body["error"], body
    assert path.read_bytes() == before
    assert services.pipeline.source is source and services.manager.current() is model
    assert services.config == config
    seen = services.pipeline.published
    wait_for(lambda: services.pipeline.published > seen)  # still producing results


def test_every_problem_is_listed_at_once(served: tuple[LiveServer, Path]) -> None:
    live, _ = served
    raw = '{"auth": {"session_hours": 1e300}, "store": {"max_rows": -1}, "nonsense": {}}'
    reply = _patch(live.client(), raw)
    assert reply.status_code == 400
    keys = {p["key"] for p in reply.json()["problems"]}
    assert keys >= {"nonsense"}
    reply = _patch(live.client(), '{"auth": {"session_hours": 1e300}, "store": {"max_rows": -1}}')
    assert {p["key"] for p in reply.json()["problems"]} == {"auth.session_hours", "store.max_rows"}


def test_accepted_change_keeps_comments_order_and_explicit_defaults(
    served: tuple[LiveServer, Path], tmp_path: Path
) -> None:
    live, path = served
    before = path.read_text()
    new_video = write_demo_video(tmp_path / "other.mp4", frames=10)
    reply = live.client().patch(
        "/api/v1/config",
        json={
            "store": {"max_rows": 5000},
            "source": {"path": str(new_video)},
            "inspection": {"min_score": 0.25},
        },
    )
    assert reply.status_code == 200, reply.text
    after = path.read_text()
    expected = (
        before.replace("max_rows = 1000000", "max_rows = 5000").replace(
            f'path = "{load_config_path(before)}"', f'path = "{new_video}"'
        )
        + "\n[inspection]\nmin_score = 0.25\n"
    )
    assert after == expected
    assert load_config(path).store.max_rows == 5000


def load_config_path(text: str) -> str:
    line = next(line for line in text.splitlines() if line.startswith("path = "))
    return line.split('"')[1]


def test_ui_form_writes_only_what_changed(data_dir: Path, tmp_path: Path) -> None:
    """A whole section as the form sends it: keys left as they were are not added to the file."""
    path = tmp_path / "c.toml"
    path.write_text(f'# mine\n[data]\ndir = "{data_dir}"\n\n[store]\nmax_rows = 7 # seven\n')
    services = Services.build(load_config(path), path)
    every = dataclasses.asdict(services.config.store)
    change = services.settings.propose({"store": {**every, "max_age_days": 3}})
    assert change.changed == ("store.max_age_days",)
    services.settings.commit(change)
    assert (
        path.read_text()
        == f'# mine\n[data]\ndir = "{data_dir}"\n\n[store]\nmax_rows = 7 # seven\nmax_age_days = 3\n'
    )


def test_failed_apply_rolls_back_running_state_and_file(
    served: tuple[LiveServer, Path], tmp_path: Path
) -> None:
    """A valid source change combined with an output that cannot start: both undone, file unchanged."""
    live, path = served
    before = path.read_bytes()
    services = live.services
    old_source_name = services.pipeline.source.name if services.pipeline.source else None
    video = write_demo_video(tmp_path / "second.mp4", frames=10)
    reply = live.client().patch(
        "/api/v1/config",
        json={
            "source": {"path": str(video), "name": "elsewhere"},
            "plc": {"mqtt_enabled": True, "mqtt_password_file": str(tmp_path / "missing")},
        },
    )
    assert reply.status_code == 400, reply.text
    assert "plc.mqtt_password_file" in {p["key"] for p in reply.json()["problems"]}
    assert path.read_bytes() == before
    assert services.pipeline.source is not None and services.pipeline.source.name == old_source_name
    assert services.config.plc.mqtt_enabled is False
    seen = services.pipeline.published
    wait_for(lambda: services.pipeline.published > seen)


def test_write_failure_rolls_back(served: tuple[LiveServer, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The file cannot be written (disk full): the live change is undone and the answer says so."""
    live, path = served
    before = path.read_bytes()

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("appliance.config.file.write_atomic", full)
    reply = live.client().patch("/api/v1/config", json={"inspection": {"min_score": 0.5}})
    assert reply.status_code >= 500 or reply.status_code >= 400
    assert "nothing was changed" in reply.json()["error"]
    assert live.services.inspector.rule.min_score == 0.0
    assert live.services.config.inspection.min_score == 0.0
    assert path.read_bytes() == before


def test_model_name_change_activates_the_model(served: tuple[LiveServer, Path]) -> None:
    live, path = served
    reply = live.client().patch("/api/v1/config", json={"model": {"name": "selfie"}})
    assert reply.status_code == 200, reply.text
    current = live.services.manager.current()
    assert current is not None and current.manifest.name == "selfie"
    assert 'name = "selfie"' in path.read_text()


def test_unfit_model_name_is_refused(served: tuple[LiveServer, Path]) -> None:
    """model.name = the vibration model on a video source: proven first, refused, nothing changed."""
    live, path = served
    before = path.read_bytes()
    model = live.services.manager.current()
    reply = live.client().patch("/api/v1/config", json={"model": {"name": "vibration"}})
    assert reply.status_code == 400
    assert "model.name" in {p["key"] for p in reply.json()["problems"]}
    assert live.services.manager.current() is model
    assert path.read_bytes() == before


def test_check_config_and_serve_refuse_the_same_file(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "inf.toml"
    path.write_text(f'[data]\ndir = "{data_dir}"\n[auth]\nsession_hours = inf\n')
    check = subprocess.run(
        [sys.executable, "-m", "appliance", "check-config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1 and "auth.session_hours" in check.stdout
    serve = subprocess.run(
        [sys.executable, "-m", "appliance", "serve", "--config", str(path), "--port", str(free_port())],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2 and "auth.session_hours" in serve.stderr
    with pytest.raises(ConfigError):
        load_config(path)


def test_source_missing_at_start_is_shown_and_fixable(data_dir: Path, tmp_path: Path) -> None:
    """A file that passes check-config but names a video that is gone: serve stays up, says why,
    and a PATCH to a good path brings results."""
    path = tmp_path / "c.toml"
    path.write_text(
        f'[data]\ndir = "{data_dir}"\n[source]\nkind = "video"\npath = "{tmp_path / "gone.mp4"}"\n'
    )
    services = Services.build(load_config(path), path)
    services.start()
    try:
        assert services.pipeline.source is None
        assert "gone.mp4" in (services.pipeline.status()["source_error"] or "")
        video = write_demo_video(tmp_path / "here.mp4", frames=10)
        services.apply(services.settings.propose({"source": {"path": str(video)}}))
        assert services.pipeline.status()["source_error"] is None
        wait_for(lambda: services.pipeline.published > 0)
    finally:
        services.stop()


def test_concurrent_changes_are_serialised(served: tuple[LiveServer, Path]) -> None:
    """Changes to different keys from several clients at once: none is lost, file and running agree."""
    live, path = served
    bodies = [{"store": {"max_rows": 2000 + i}} for i in range(4)] + [
        {"inspection": {"min_count": i}} for i in range(4)
    ]
    replies: list[int] = []

    def send(body: dict[str, dict[str, object]]) -> None:
        with live.client() as api:
            replies.append(api.patch("/api/v1/config", json=body).status_code)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert replies == [200] * len(bodies)
    saved = load_config(path)
    running = live.services.config
    assert saved.store.max_rows == running.store.max_rows and 2000 <= saved.store.max_rows < 2004
    assert saved.inspection == running.inspection == live.services.inspector.rule
    assert "# the camera at station 3" in path.read_text()


def test_command_line_overrides_survive_a_change(data_dir: Path, tmp_path: Path) -> None:
    """serve --data-dir / --port override the file; a later change keeps them and does not write them."""
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndir = "/somewhere/else"\n[server]\nport = 9000\n')
    running = dataclasses.replace(
        load_config(path),
        data=dataclasses.replace(load_config(path).data, dir=str(data_dir)),
        server=dataclasses.replace(load_config(path).server, port=9100),
    )
    services = Services.build(running, path)
    change = services.settings.propose({"store": {"max_rows": 10}})
    assert change.changed == ("store.max_rows",)
    assert change.config.data.dir == str(data_dir) and change.config.server.port == 9100
    services.settings.commit(change)
    assert load_config(path).data.dir == "/somewhere/else" and load_config(path).server.port == 9000
