"""sd_notify on a real unix datagram socket, as systemd would receive it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.services import Services
from tests.conftest import config_for, wait_for


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # 0.1 s: pings every 0.05 s
    yield sock
    sock.close()


def messages(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(256).decode() for _ in range(count)]


def test_ready_then_watchdog_pings_then_stopping(data_dir: Path, notify_socket: socket.socket) -> None:
    services = Services.build(config_for(data_dir))
    services.start()
    try:
        received = messages(notify_socket, 4)
        assert received[0] == "READY=1" and set(received[1:]) == {"WATCHDOG=1"}
        assert services.healthy()
        assert services.writer is not None
        services.writer.close()  # the writer dies: the watchdog must stop pinging
        wait_for(lambda: not services.healthy())
        notify_socket.settimeout(0.05)
        while True:  # drain pings sent before the writer died
            try:
                notify_socket.recv(256)
            except TimeoutError:
                break
        notify_socket.settimeout(0.5)
        with pytest.raises(TimeoutError):
            notify_socket.recv(256)
    finally:
        services.stop()
    notify_socket.settimeout(5)
    assert notify_socket.recv(256) == b"STOPPING=1"


def test_without_systemd_nothing_is_sent(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    services = Services.build(config_for(data_dir))
    services.start()
    assert not services.watchdog.enabled
    services.stop()
