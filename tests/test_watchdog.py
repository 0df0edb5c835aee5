"""sd_notify on a real unix datagram socket, as systemd would receive it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.services import Services
from appliance.watchdog import extend_for_restart
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
        received = messages(notify_socket, 5)
        assert received[:2] == ["READY=1", "WATCHDOG_USEC=100000"]  # the unit's timeout, after a restart too
        assert set(received[2:]) == {"WATCHDOG=1"}
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


def test_a_restart_does_not_tell_systemd_it_stops(data_dir: Path, notify_socket: socket.socket) -> None:
    """STOPPING=1 would make systemd stop the unit; the supervisor extends the timeout instead."""
    services = Services.build(config_for(data_dir))
    services.start()
    assert messages(notify_socket, 2) == ["READY=1", "WATCHDOG_USEC=100000"]
    services.restart_requested = True
    services.stop()
    extend_for_restart(300)
    notify_socket.settimeout(5)
    while (message := notify_socket.recv(256).decode()) == "WATCHDOG=1":
        pass
    assert message == "WATCHDOG=1\nWATCHDOG_USEC=300000000"


def test_no_model_keeps_pinging(tmp_path: Path, notify_socket: socket.socket) -> None:
    """No model is a 503, but not a fault a restart cures: systemd must not restart-loop the unit."""
    services = Services.build(config_for(tmp_path / "data"))
    services.start()
    try:
        assert services.health().reasons == ("model: no model is loaded",)
        assert messages(notify_socket, 4)[2:] == ["WATCHDOG=1", "WATCHDOG=1"]
    finally:
        services.stop()
