"""`make image-test`: build the qemu-virt image, boot it under qemu-system-aarch64, use it over HTTP.

The image boots the way a user's machine would: UEFI firmware (QEMU_EFI.fd) -> systemd-boot on the
image's boot partition -> Debian kernel + tiny-initramfs -> systemd -> appliance.service. The disk is
a copy of the built image made 1 GiB larger, so the first-boot growth of the data partition runs.
User-mode networking forwards a free 127.0.0.1 port to the guest's 8080. The test holds qemu's own
PID (Popen of the binary, no shell in between) and stops only that process: first cleanly with
`system_powerdown` (ACPI power button -> systemd-logind -> poweroff) on the QEMU monitor's unix
socket, and only if that times out with SIGTERM/SIGKILL.

Needs root (the build), qemu-system-arm and qemu-efi-aarch64. Deselected from the default run:
`make image-test` runs `IMAGE_TEST=1 pytest -m image tests/e2e/test_image_boot.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(
        os.environ.get("IMAGE_TEST") != "1", reason="builds and boots an image: make image-test"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("APPLIANCE_IMAGE_CACHE", "/var/cache/edge-appliance"))
OUT = ROOT / "build" / "image-test"
FIRMWARE = Path("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd")
BOARD = "qemu-virt"
BUILD_TIMEOUT_S = 60 * 60  # cold (mmdebstrap under emulation): 7-17 min idle, 40 min on a busy host
BOOT_TIMEOUT_S = 8 * 60  # emulated arm64 on 2 x86 cores: typically 1-2 minutes
POWERDOWN_TIMEOUT_S = 120
GROW_BYTES = 1 << 30
PASSWORD = "first-boot-Setup-2026"


@dataclass
class Vm:
    process: subprocess.Popen[bytes]
    url: str
    monitor: Path
    serial: Path
    started: float
    state: dict[str, Any] = field(default_factory=dict)

    def serial_text(self) -> str:
        return self.serial.read_text(encoding="utf-8", errors="replace") if self.serial.exists() else ""


def report(name: str, seconds: float) -> None:
    """Timings for the people reading CI logs: build/image-test/timings.json, also on stderr."""
    path = OUT / "timings.json"
    timings = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    timings[name] = round(seconds, 1)
    path.write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
    sys.stderr.write(f"{name}: {seconds:.1f}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(
    vm: Vm, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    req = urllib.request.Request(vm.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        payload = err.read()
        try:
            return err.code, json.loads(payload or b"null")
        except json.JSONDecodeError:
            return err.code, payload.decode(errors="replace")


def monitor_command(vm: Vm, command: str) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(vm.monitor))
        sock.recv(4096)  # banner
        sock.sendall(command.encode() + b"\n")
        time.sleep(0.5)


def stop(vm: Vm) -> int | None:
    """Power the guest down; only qemu's own PID is ever signalled."""
    if vm.process.poll() is None:
        try:
            monitor_command(vm, "system_powerdown")
            return vm.process.wait(timeout=POWERDOWN_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            vm.process.terminate()
            try:
                vm.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                vm.process.kill()
                vm.process.wait()
    return vm.process.returncode


@pytest.fixture(scope="module")
def raw_image() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / "build.log"
    command = [str(ROOT / "build_image.sh"), "--board", BOARD, "--out", str(OUT), "--cache", str(CACHE)]
    # xz -1 instead of the release default -6: 20 s instead of 4 min on 2 cores, same image inside
    env = {**os.environ, "XZ_LEVEL": os.environ.get("XZ_LEVEL", "1")}
    started = time.monotonic()
    with log.open("wb") as fh:
        done = subprocess.run(
            [*command, "--keep-raw"],
            check=False,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT_S,
        )
    text = log.read_text(encoding="utf-8", errors="replace")
    assert done.returncode == 0, f"build_image.sh failed; last lines of {log}:\n{text[-4000:]}"
    report("build_s", time.monotonic() - started)
    images = sorted(OUT.glob(f"appliance-*-{BOARD}.img"))
    assert images, f"no raw image in {OUT}"
    return images[-1]


@pytest.fixture(scope="module")
def vm(raw_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vm]:
    if shutil.which("qemu-system-aarch64") is None or not FIRMWARE.exists():
        pytest.fail(
            "qemu-system-aarch64 or QEMU_EFI.fd missing: apt-get install qemu-system-arm qemu-efi-aarch64"
        )
    work = tmp_path_factory.mktemp("vm")
    disk = work / "disk.img"
    subprocess.run(["cp", "--sparse=always", str(raw_image), str(disk)], check=True)
    os.truncate(disk, disk.stat().st_size + GROW_BYTES)  # a "bigger card": the data partition grows
    port = free_port()
    monitor, serial = work / "monitor.sock", work / "serial.log"
    # romfile= : no iPXE option ROM for the NIC (package ipxe-qemu not needed; nothing netboots)
    # fmt: off
    command = [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1536",
        "-bios", str(FIRMWARE),
        "-drive", f"file={disk},format=raw,if=virtio",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080",
        "-device", "virtio-net-pci,netdev=n0,romfile=", "-device", "virtio-rng-pci",
        "-display", "none", "-serial", f"file:{serial}",
        "-monitor", f"unix:{monitor},server,nowait",
    ]
    # fmt: on
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # process.pid is qemu's own PID
    machine = Vm(process, f"http://127.0.0.1:{port}", monitor, serial, time.monotonic())
    try:
        yield machine
    finally:
        stop(machine)
        if serial.exists():
            shutil.copy(serial, OUT / "serial.log")


def test_boots_and_reports_healthy(vm: Vm) -> None:
    deadline = vm.started + BOOT_TIMEOUT_S
    status: int | None = None
    while time.monotonic() < deadline:
        assert vm.process.poll() is None, (
            f"qemu exited ({vm.process.returncode}):\n{vm.serial_text()[-3000:]}"
        )
        try:
            status, body = request(vm, "GET", "/api/v1/health")
            if status == 200 and body.get("status") == "ok":
                break
        except OSError:
            pass
        time.sleep(2)
    else:
        pytest.fail(f"no healthy /api/v1/health within {BOOT_TIMEOUT_S} s:\n{vm.serial_text()[-3000:]}")
    report("boot_to_health_s", time.monotonic() - vm.started)


def _setup_route_in_source() -> bool:
    app = ROOT / "appliance" / "api" / "app.py"
    return app.exists() and "/api/v1/setup" in app.read_text(encoding="utf-8")


def test_first_boot_password_setup(vm: Vm) -> None:
    status, body = request(vm, "GET", "/api/v1/setup")
    if status == 404 and not _setup_route_in_source():
        pytest.skip("first-boot setup endpoint /api/v1/setup is not in this appliance version yet")
    assert status == 200, f"GET /api/v1/setup: {status} {body}"
    assert body == {"required": True}, "a fresh image must not have an admin password"
    payload = json.dumps({"password": PASSWORD}).encode()
    status, body = request(vm, "POST", "/api/v1/setup", payload, {"Content-Type": "application/json"})
    assert status == 201, f"POST /api/v1/setup: {status} {body}"
    vm.state["token"] = body["token"]
    assert request(vm, "GET", "/api/v1/setup")[1] == {"required": False}
    again = request(vm, "POST", "/api/v1/setup", payload, {"Content-Type": "application/json"})
    assert again[0] == 409, "setup must be refused once a password exists"


def _astronaut_png() -> bytes:
    import cv2
    import numpy as np
    from skimage import data as samples

    frame = np.ascontiguousarray(cv2.cvtColor(samples.astronaut(), cv2.COLOR_RGB2BGR))
    ok, encoded = cv2.imencode(".png", frame)
    assert ok
    return bytes(encoded.tobytes())


def test_inference_over_rest_is_stored(vm: Vm) -> None:
    headers = {"Content-Type": "image/png"}
    if "token" in vm.state:
        headers["Authorization"] = f"Bearer {vm.state['token']}"
    started = time.monotonic()
    status, result = request(vm, "POST", "/api/v1/infer?store=1", _astronaut_png(), headers)
    assert status == 200, f"POST /api/v1/infer: {status} {result}"
    report("first_inference_s", time.monotonic() - started)
    assert result["count"] == 1, f"expected one face: {result}"
    assert result["label"] == "face"
    read = {"Authorization": headers["Authorization"]} if "Authorization" in headers else {}
    deadline = time.monotonic() + 30  # the store writes in batches
    while time.monotonic() < deadline:
        status, latest = request(vm, "GET", "/api/v1/results/latest", headers=read)
        if status == 200 and latest and latest.get("seq") == result["seq"]:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"result {result['seq']} not stored: last answer {status} {latest}")
    assert latest["count"] == 1


def test_config_change_is_saved_to_etc(vm: Vm) -> None:
    """The service may rewrite /etc/appliance/config.toml (ProtectSystem=strict + ReadWritePaths)."""
    if "token" not in vm.state:
        pytest.skip("needs the admin token of the first-boot setup")
    auth = {"Authorization": f"Bearer {vm.state['token']}", "Content-Type": "application/json"}
    change = json.dumps({"store": {"snapshot_quality": 85}}).encode()
    status, body = request(vm, "PATCH", "/api/v1/config", change, auth)
    assert status == 200, f"PATCH /api/v1/config: {status} {body}"
    status, body = request(vm, "GET", "/api/v1/config", headers=auth)
    assert status == 200 and body["file"] == "/etc/appliance/config.toml"
    assert body["config"]["store"]["snapshot_quality"] == 85


def test_restart_over_rest_comes_back(vm: Vm) -> None:
    """POST /api/v1/restart: a new server process (new PID) answers health again, under systemd."""
    if "token" not in vm.state:
        pytest.skip("needs the admin token of the first-boot setup")
    auth = {"Authorization": f"Bearer {vm.state['token']}"}
    status, before = request(vm, "GET", "/api/v1/status", headers=auth)
    assert status == 200, f"GET /api/v1/status: {status} {before}"
    status, body = request(vm, "POST", "/api/v1/restart", b"", auth)
    assert status == 202, f"POST /api/v1/restart: {status} {body}"
    started = time.monotonic()
    deadline = started + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            status, health = request(vm, "GET", "/api/v1/health")
            if status == 200 and health.get("status") == "ok":
                status, after = request(vm, "GET", "/api/v1/status", headers=auth)
                if status == 200 and after["pid"] != before["pid"]:
                    break
        except OSError:
            pass
        time.sleep(1)
    else:
        pytest.fail(f"not healthy again after the restart:\n{vm.serial_text()[-3000:]}")
    report("restart_to_health_s", time.monotonic() - started)


def test_data_partition_grew_at_first_boot(vm: Vm) -> None:
    text = vm.serial_text()
    assert "appliance-grow-data: growing" in text, f"no growth message on the console:\n{text[-3000:]}"


def test_powers_down_cleanly(vm: Vm) -> None:
    code = stop(vm)
    text = vm.serial_text()
    assert code == 0, f"qemu exit code {code}"
    assert "reboot: Power down" in text, f"no clean power-down on the console:\n{text[-2000:]}"
