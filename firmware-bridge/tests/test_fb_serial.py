"""Real pty pairs + pyserial: simulator <-> session, and unplug/replug recovery of SerialTransport."""

import os
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from firmware_bridge import (
    DeliveryStatus,
    ErrorCode,
    FdTransport,
    IoSet,
    LinkState,
    Message,
    Result,
    SensorFrame,
    SerialTransport,
    Session,
    SessionConfig,
    SessionState,
    TransportConfig,
    Trigger,
    Verdict,
    VirtualPort,
)
from firmware_bridge.bootloader import enter_bootloader
from firmware_bridge.simulator import Simulator, SimulatorConfig
from firmware_bridge.waveform import SensorMode

FAST_BACKOFF = TransportConfig(backoff_min_s=0.02, backoff_max_s=0.2, read_timeout_s=0.05)
SIM = SimulatorConfig(rate_hz=50.0, trigger_every_s=0.1, mode=SensorMode.CYCLE, cycle_period_s=0.2, seed=3)


class Inbox:
    """Thread-safe collector of received messages with an event per arrival (no polling)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[list[Message]], bool], timeout: float = 3.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.messages), timeout)

    def count(self, kind: type) -> int:
        with self._cond:
            return sum(isinstance(m, kind) for m in self.messages)


@pytest.fixture
def vport(tmp_path: Path) -> Iterator[VirtualPort]:
    port = VirtualPort(tmp_path / "ttyFB0")
    port.open()
    yield port
    port.close()
    port.remove_link()


def test_simulator_and_session_over_pty() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    inbox = Inbox()
    states: list[LinkState] = []
    sim = Simulator(FdTransport(master), SIM)
    transport = SerialTransport(os.ttyname(slave), FAST_BACKOFF)
    host = Session(transport, on_message=inbox)
    host.add_state_listener(lambda _s: states.append(transport.state))
    try:
        sim.start()
        host.start()
        assert host.wait_ready(3.0)
        assert host.peer is not None and host.peer.firmware == "fb-sim/1.1.0"
        assert inbox.wait(lambda ms: sum(isinstance(m, SensorFrame) for m in ms) >= 35)
        assert inbox.wait(lambda ms: any(isinstance(m, Trigger) for m in ms))
        frames = [m for m in inbox.messages if isinstance(m, SensorFrame)]
        arrays = [f.to_array() for f in frames]
        assert all(a.shape == (128, 3) and a.dtype == np.float32 for a in arrays)
        rms = sorted(float(np.sqrt(np.mean(a**2))) for a in arrays)
        assert rms[0] < 0.05 and rms[-1] > 0.5  # cycle mode: idle ... fault

        trigger = next(m for m in inbox.messages if isinstance(m, Trigger))
        result = host.send(Result(1, trigger.seq, 2, 870, Verdict.FAIL))
        assert result.wait(2.0) is DeliveryStatus.ACKED
        assert sim.last_result == result.message
        pulse = host.send(IoSet(1, True, 400))
        assert pulse.wait(2.0) is DeliveryStatus.ACKED
        assert sim.outputs[1] is True
        bad = host.send(IoSet(9, True))
        assert bad.wait(2.0) is DeliveryStatus.NACKED and bad.code == ErrorCode.INVALID_ARGUMENT
        deadline = time.monotonic() + 2.0
        while sim.outputs[1] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sim.outputs[1] is False  # pulse reverted
        assert any(d.status is DeliveryStatus.ACKED for d in sim.triggers)
        stats = host.stats()
        assert stats.decoder.errors == 0 and stats.transport.bytes_rx > 10_000
    finally:
        host.stop()
        sim.stop()
        os.close(master)
        os.close(slave)
    assert LinkState.CONNECTED in states


def test_unplug_replug_through_symlink(vport: VirtualPort) -> None:
    inbox = Inbox()
    seen: list[LinkState] = []
    sim = Simulator(FdTransport(vport.master_fd), SIM)
    sim.start()
    transport = SerialTransport(vport.path, FAST_BACKOFF)  # the symlink, re-pointed on replug
    host = Session(transport, SessionConfig(link_timeout_s=1.0), on_message=inbox)
    host.add_state_listener(lambda _s: seen.append(transport.state))
    host.start()
    try:
        assert host.wait_ready(3.0)
        assert inbox.wait(lambda ms: len(ms) >= 3)

        sim.stop()
        vport.close()  # unplug: both pty fds closed, the slave path disappears
        assert _wait(lambda: host.state is not SessionState.READY)
        assert _wait(lambda: transport.state in (LinkState.LOST, LinkState.RECONNECTING))
        time.sleep(0.3)  # a few failed reopen attempts with backoff
        assert transport.stats().open_failures >= 1

        vport.open()  # replug: new pty, symlink now points at the new slave
        before = len(inbox.messages)
        sim = Simulator(FdTransport(vport.master_fd), SIM)
        sim.start()
        assert host.wait_ready(5.0)
        assert inbox.wait(lambda ms: sum(isinstance(m, SensorFrame) for m in ms[before:]) >= 3)
        assert host.send(Result(2, 0, 1, 10, Verdict.PASS)).wait(2.0) is DeliveryStatus.ACKED
        stats = transport.stats()
        assert stats.losses >= 1 and stats.reconnects >= 1 and stats.state is LinkState.CONNECTED
        assert host.stats().counters.handshakes >= 2
        assert LinkState.CONNECTED in seen
    finally:
        host.stop()
        sim.stop()


def test_reconnect_to_path_from_callable() -> None:
    current = VirtualPort()
    current.open()
    transport = SerialTransport(lambda: current.slave_path, FAST_BACKOFF)
    sim = Simulator(FdTransport(current.master_fd), SimulatorConfig(rate_hz=20.0, trigger_every_s=0))
    sim.start()
    host = Session(transport)
    host.start()
    try:
        assert host.wait_ready(3.0)
        sim.stop()
        old = current.slave_path
        current.close()
        assert _wait(lambda: transport.state is not LinkState.CONNECTED)
        current.open()
        sim = Simulator(FdTransport(current.master_fd), SimulatorConfig(rate_hz=20.0, trigger_every_s=0))
        sim.start()
        assert host.wait_ready(5.0)
        assert transport.stats().port == current.slave_path
        assert transport.stats().opens == 2, (old, current.slave_path)
    finally:
        host.stop()
        sim.stop()
        current.close()


def test_transport_config_validation() -> None:
    with pytest.raises(ValueError, match="unsupported baud rate"):
        TransportConfig(baudrate=9600)
    with pytest.raises(ValueError, match="backoff"):
        TransportConfig(backoff_min_s=2.0, backoff_max_s=1.0)
    for baud in (115200, 230400, 460800, 921600):
        assert TransportConfig(baudrate=baud).baudrate == baud


def test_simulator_cli_creates_virtual_port(tmp_path: Path) -> None:
    link = tmp_path / "ttySIM"
    package_dir = Path(sys.modules["firmware_bridge"].__file__ or "").resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_dir), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "firmware_bridge.simulator", "--port", str(link), "--create-pty"]
    cmd += ["--rate", "20", "--trigger-every", "0.2", "--mode", "fault", "--duration", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("virtual serial port:"), line
        inbox = Inbox()
        with Session.open(str(link), on_message=inbox) as host:
            assert host.wait_ready(5.0)
            assert inbox.wait(lambda ms: any(isinstance(m, Trigger) for m in ms))
            assert inbox.wait(lambda ms: any(isinstance(m, SensorFrame) for m in ms))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert not link.exists()


def _wait(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_simulator_on_port_path_with_host_on_master(vport: VirtualPort) -> None:
    """Reverse roles: the simulator opens a serial *path* (as with a socat pair or a USB loopback)."""
    inbox = Inbox()
    with (
        Simulator.on_port(vport.path, SimulatorConfig(rate_hz=30.0, trigger_every_s=0.1)) as sim,
        Session(FdTransport(vport.master_fd), on_message=inbox) as host,
    ):
        assert host.wait_ready(3.0) and sim.session.wait_ready(3.0)
        assert inbox.wait(lambda ms: any(isinstance(m, SensorFrame) for m in ms))
        assert host.send(IoSet(0, True)).wait(2.0) is DeliveryStatus.ACKED
        assert sim.outputs[0] is True


def test_a_long_unplug_does_not_grow_the_reopen_backoff(vport: VirtualPort) -> None:
    """R19: while the device node is gone the transport polls for it at the minimum interval, so a
    device that comes back after a long absence is opened at once (not after a grown backoff)."""
    sim = Simulator(FdTransport(vport.master_fd), SIM)
    sim.start()
    transport = SerialTransport(vport.path, TransportConfig(backoff_min_s=0.1, backoff_max_s=5.0))
    host = Session(transport)
    host.start()
    try:
        assert host.wait_ready(3.0)
        sim.stop()
        vport.close()  # unplugged for 7 s: a doubling backoff would be at its 5 s cap by then
        assert _wait(lambda: transport.state in (LinkState.LOST, LinkState.RECONNECTING))
        time.sleep(7.0)  # the scenario: the device stays away
        failures = transport.stats().open_failures
        assert failures >= 30  # polled every 0.1 s, not 0.1 + 0.2 + 0.4 + ... s
        vport.open()
        sim = Simulator(FdTransport(vport.master_fd), SIM)
        sim.start()
        assert host.wait_ready(3.0)
        assert host.stats().peer is not None
    finally:
        host.stop()
        sim.stop()


def test_device_status_reaches_the_host_and_is_forgotten_on_unplug(vport: VirtualPort) -> None:
    """R11/R18: a 1.1 device reports its counters after the handshake; unplugged, they are gone."""
    sim = Simulator(FdTransport(vport.master_fd), SimulatorConfig(rate_hz=0.0, trigger_every_s=0.0))
    sim.start()
    transport = SerialTransport(vport.path, FAST_BACKOFF)
    host = Session(transport)
    host.start()
    try:
        assert host.wait_ready(3.0)
        assert _wait(lambda: host.stats().peer_status is not None)
        assert host.stats().protocol == "1.1"
        sim.stop()
        vport.close()
        assert _wait(lambda: host.stats().peer_status is None and host.peer is None)
    finally:
        host.stop()
        sim.stop()


def test_bootloader_tool_puts_a_11_device_into_update_mode(vport: VirtualPort) -> None:
    sim = Simulator(FdTransport(vport.master_fd), SimulatorConfig(rate_hz=20.0, trigger_every_s=0.0))
    sim.start()
    try:
        code, text = enter_bootloader(vport.path, 115200)
        assert code == 0, text
        assert sim.bootloader_requested
    finally:
        sim.stop()
