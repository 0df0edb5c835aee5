"""The system update front end (appliance/update.py, `appliance update`, POST /api/v1/system/update)
against a fake rauc (tests/fakes/rauc.py): what is asked of RAUC, how its refusals reach the user,
what is recorded. RAUC itself (signatures, slots, the boot loader) runs in `make image-test`."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.cli import main
from appliance.update import (
    BundleRefused,
    Paths,
    Rauc,
    UpdateFailed,
    Updater,
    UpdateUnavailable,
    parse_status,
    read_events,
    record,
)
from tests.conftest import ADMIN_PASSWORD, LiveServer, config_for, start_server
from tests.e2e.browser import logged_in_client

FAKE = Path(__file__).parent / "fakes" / "rauc.py"
COMPATIBLE = "edge-appliance-qemu-virt"


def initial_state() -> dict[str, Any]:
    slot = {"class": "rootfs", "good": True, "installed": "2026-12-01T00:00:00Z"}
    return {
        "compatible": COMPATIBLE,
        "booted": "A",
        "order": ["A", "B"],
        "calls": [],
        "slots": [
            {**slot, "name": "rootfs.0", "bootname": "A", "device": "/dev/vda2", "version": "0.1.0"},
            {
                **slot,
                "name": "rootfs.1",
                "bootname": "B",
                "device": "/dev/vda3",
                "version": None,
                "good": False,
            },
        ],
    }


class Device:
    """A fake device: rauc state, system.conf, the image file and the event record in tmp."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "rauc-state.json"
        self.state_file.write_text(json.dumps(initial_state()))
        (root / "system.conf").write_text("[system]\ncompatible=edge-appliance-qemu-virt\n")
        (root / "appliance-image").write_text("VERSION=0.1.0\nBOARD=qemu-virt\n")
        self.paths = Paths(
            image=root / "appliance-image",
            events=root / "system" / "slot-events.json",
            system_conf=root / "system.conf",
            reboot_request=root / "system" / "reboot-requested",
        )
        self.rauc_command = f"{sys.executable} {FAKE} --state {self.state_file}"
        self.updater = Updater(Rauc(tuple(self.rauc_command.split())), self.paths)

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def update_state(self, **changes: Any) -> None:
        self.state_file.write_text(json.dumps({**self.state(), **changes}))

    def bundle(
        self, name: str, signer: str = "dev", compatible: str = COMPATIBLE, version: str = "0.1.0+2"
    ) -> Path:
        path = self.root / name
        path.write_text(f"compatible={compatible}\nversion={version}\nsigner={signer}\n")
        return path

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.paths.events)


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path)


def test_install_writes_the_other_slot_and_records_it(device: Device) -> None:
    result = device.updater.install(device.bundle("v2.raucb"), source="cli")
    assert (result.slot, result.version) == ("B", "0.1.0+2")
    assert device.state()["calls"][0] == ["install", str(device.root / "v2.raucb")]
    status = device.updater.status()
    assert status.booted == "A" and status.slot("B") is not None
    slot_b = status.slot("B")
    assert (
        slot_b is not None and slot_b.version == "0.1.0+2" and slot_b.boot_status == "good" and slot_b.primary
    )
    assert [(e["kind"], e["slot"], e["version"]) for e in device.events()] == [("installed", "B", "0.1.0+2")]


@pytest.mark.parametrize(
    ("signer", "compatible", "words"),
    [
        ("none", COMPATIBLE, "valid RAUC bundle"),
        ("other", COMPATIBLE, "signature verification failed"),
        ("dev", "edge-appliance-rock5b", "Compatible mismatch"),
    ],
)
def test_refused_bundles_are_422_naming_rauc_reason_and_change_nothing(
    device: Device, signer: str, compatible: str, words: str
) -> None:
    before = device.state()["slots"]
    with pytest.raises(BundleRefused, match=words) as refused:
        device.updater.install(device.bundle("bad.raucb", signer, compatible), source="api")
    assert refused.value.status == 422
    assert device.state()["slots"] == before
    assert [e["kind"] for e in device.events()] == ["refused"]
    assert words in device.events()[0]["reason"]


def test_a_device_fault_is_not_blamed_on_the_bundle(device: Device) -> None:
    device.update_state(fail_write=True)
    with pytest.raises(UpdateFailed, match="No space left") as failed:
        device.updater.install(device.bundle("v2.raucb"), source="api")
    assert not isinstance(failed.value, BundleRefused) and failed.value.status == 500


def test_without_system_conf_there_is_no_update(device: Device) -> None:
    device.paths.system_conf.unlink()
    with pytest.raises(UpdateUnavailable) as missing:
        device.updater.status()
    assert missing.value.status == 409
    with pytest.raises(UpdateUnavailable):
        device.updater.install(device.bundle("v2.raucb"), source="cli")
    assert device.state()["calls"] == []  # rauc is never asked


def test_missing_rauc_is_unavailable_not_a_crash(device: Device) -> None:
    updater = Updater(Rauc(("/nonexistent/rauc",)), device.paths)
    with pytest.raises(UpdateUnavailable, match="rauc is not installed"):
        updater.status()


def test_status_of_real_rauc_json() -> None:
    """The shape RAUC 1.8 prints (v1.8 src/main.c, status_json)."""
    doc = {
        "compatible": COMPATIBLE,
        "variant": None,
        "booted": "B",
        "boot_primary": "rootfs.1",
        "slots": [
            {"rootfs.1": {"class": "rootfs", "device": "/dev/vda3", "type": "ext4", "bootname": "B",
                          "state": "booted", "parent": None, "mountpoint": "/", "boot_status": "good",
                          "slot_status": {"bundle": {"compatible": COMPATIBLE, "version": "0.1.0+2"},
                                          "installed": {"timestamp": "2026-12-02T04:00:00Z", "count": 1},
                                          "status": "ok"}}},
            {"rootfs.0": {"class": "rootfs", "device": "/dev/vda2", "type": "ext4", "bootname": "A",
                          "state": "inactive", "parent": None, "mountpoint": None, "boot_status": "bad"}},
        ],
    }  # fmt: skip
    status = parse_status(doc, {"VERSION": "0.1.0+2"}, [])
    assert [s.bootname for s in status.slots] == ["A", "B"]
    a, b = status.slots
    assert (a.booted, a.boot_status, a.version, a.primary) == (False, "bad", None, False)
    assert (b.booted, b.boot_status, b.version, b.primary) == (True, "good", "0.1.0+2", True)
    assert status.to_json()["version"] == "0.1.0+2" and status.rollback is None


def test_cli_update_and_slots(device: Device, capsys: pytest.CaptureFixture[str]) -> None:
    fake = ["--rauc", device.rauc_command, "--system-conf", str(device.paths.system_conf)]
    fake += ["--events", str(device.paths.events)]
    assert main(["update", str(device.bundle("v2.raucb")), *fake]) == 0
    assert "installed 0.1.0+2 into slot B" in capsys.readouterr().out
    assert main(["slots", *fake]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["booted"] == "A" and [s["version"] for s in shown["slots"]] == ["0.1.0", "0.1.0+2"]
    assert shown["events"][0]["source"] == "cli"
    refused = device.bundle("other.raucb", signer="other")
    assert main(["update", str(refused), *fake]) != 0
    assert "signature verification failed" in capsys.readouterr().err


# -- over HTTP: POST /api/v1/system/update on a real server ------------------------------------------


@pytest.fixture
def server(data_dir: Path, device: Device) -> Iterator[LiveServer]:
    live = start_server(config_for(data_dir))
    live.setup()
    yield live
    live.stop()


def _attach(server: LiveServer, device: Device) -> None:
    server.server.config.app.state.updater = device.updater  # type: ignore[attr-defined]


def test_api_installs_a_streamed_bundle_and_removes_it(server: LiveServer, device: Device) -> None:
    _attach(server, device)
    api = server.client()
    bundle = device.bundle("v2.raucb").read_bytes()
    reply = api.post(
        "/api/v1/system/update", content=bundle, headers={"content-type": "application/octet-stream"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["slot"] == "B" and reply.json()["reboot_required"] is True
    staged = server.services.config.data_dir / "updates"
    assert list(staged.iterdir()) == []  # the staged bundle is gone
    installed_from = Path(device.state()["calls"][0][1])
    assert installed_from.parent.parent == staged  # it was staged on the data partition
    status = api.get("/api/v1/status").json()["system"]
    assert status["available"] is True and status["booted"] == "A"
    assert [(s["bootname"], s["version"]) for s in status["slots"]] == [("A", "0.1.0"), ("B", "0.1.0+2")]
    assert api.get("/api/v1/system").json()["slots"] == status["slots"]


def test_api_refusals_are_clear_4xx(server: LiveServer, device: Device) -> None:
    _attach(server, device)
    api = server.client()
    octet = {"content-type": "application/octet-stream"}
    unsigned = api.post(
        "/api/v1/system/update", content=device.bundle("u.raucb", "none").read_bytes(), headers=octet
    )
    assert unsigned.status_code == 422 and "refused the bundle" in unsigned.json()["error"]
    other = api.post(
        "/api/v1/system/update", content=device.bundle("o.raucb", "other").read_bytes(), headers=octet
    )
    assert other.status_code == 422 and "signature" in other.json()["error"]
    empty = api.post("/api/v1/system/update", content=b"", headers=octet)
    assert empty.status_code == 400
    assert [c[0] for c in device.state()["calls"]].count("install") == 2  # the empty one never reached rauc


def test_api_refuses_an_oversized_bundle_before_reading_it(server: LiveServer, device: Device) -> None:
    _attach(server, device)
    host, port = server.url.removeprefix("http://").split(":")
    head = (
        "POST /api/v1/system/update HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Bearer {server.token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {5 * 2**30}\r\n\r\n"
    )
    # the declared 5 GiB never come: the answer must not wait for them
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b"x" * 1024)
        answer = ""
        while "\r\n\r\n" not in answer or "}" not in answer.split("\r\n\r\n", 1)[1]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert "limit" in answer
    assert device.state()["calls"] == []


def test_api_needs_admin_and_says_409_without_rauc(server: LiveServer, device: Device) -> None:
    api = server.client()
    token = api.post("/api/v1/tokens", json={"name": "reader", "scope": "read"}).json()["token"]
    reader = server.client(token)
    assert reader.post("/api/v1/system/update", content=b"x").status_code == 403
    assert reader.post("/api/v1/system/reboot").status_code == 403
    # no updater attached: this host has no /etc/rauc/system.conf
    assert api.post("/api/v1/system/update", content=b"x").status_code == 409
    assert api.get("/api/v1/system").json()["available"] is False
    _attach(server, device)
    assert api.post("/api/v1/system/reboot").status_code == 202
    assert device.paths.reboot_request.exists()


def test_system_page_shows_the_slots_and_installs_with_the_csrf_token(
    server: LiveServer, device: Device
) -> None:
    _attach(server, device)
    client = logged_in_client(server.url, ADMIN_PASSWORD)
    page = client.get("/system")
    assert page.status_code == 200
    assert 'id="sys-slots"' in page.text and "0.1.0" in page.text and 'id="update-form"' in page.text
    bundle = device.bundle("v2.raucb").read_bytes()
    octet = {"content-type": "application/octet-stream"}
    token = client.headers.pop("x-csrf-token")
    forged = client.post("/system/update", content=bundle, headers=octet)
    assert forged.status_code == 403
    assert [c for c in device.state()["calls"] if c[0] == "install"] == []
    done = client.post("/system/update", content=bundle, headers={**octet, "x-csrf-token": token})
    assert done.status_code == 200 and done.json()["slot"] == "B", done.text
    after = client.get("/system").text
    assert "0.1.0+2" in after and "boots next" in after
    # a fall-back is shown with its reason
    device.update_state(booted="B")
    device.updater.mark("bad")
    record(
        device.paths.events,
        {"kind": "bad", "slot": "B", "version": "0.1.0+2", "reason": "not healthy in 900 s"},
    )
    device.update_state(booted="A")
    notice = client.get("/system").text
    assert 'id="sys-rollback"' in notice and "not healthy in 900 s" in notice
