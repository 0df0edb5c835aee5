"""Link figures on a pty with emulated UART timing (both directions paced at the baud rate).

``python -m firmware_bridge.linkbench [--baud 115200 921600] [--triggers 200] [--json]``

* **trigger -> RESULT**: the simulated device streams SENSOR_FRAME windows (f32 [128, 3]) at
  ``window_rate`` and fires TRIGGERs; the host answers each TRIGGER with a RESULT at once. Measured
  on the device: from handing the TRIGGER to its session until the RESULT was applied.
* **reconnect after replug**: the pty is closed (unplug) for ``unplug_s`` and a new one appears at
  the same path; measured: replug -> session READY again (host SerialTransport reopening + HELLO).
* **garbage flood**: ``flood_s`` of random bytes at full line rate mixed with valid TRIGGERs;
  reported: frames dropped by reason, NACKs the host sent (rule: none for garbage), TRIGGERs ACKed.

The numbers go into firmware-bridge/README.md; nothing here asserts timing.
"""

import argparse
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from firmware_bridge.delivery import DeliveryStatus
from firmware_bridge.fdtransport import FdTransport
from firmware_bridge.messages import Message, Result, Trigger, Verdict
from firmware_bridge.session import Session
from firmware_bridge.simulator import Simulator, SimulatorConfig, device_session_config
from firmware_bridge.transport import SerialTransport, TransportConfig
from firmware_bridge.uart import PacedTransport
from firmware_bridge.virtualport import VirtualPort
from firmware_bridge.waveform import SensorMode

WINDOW_RATES = {115200: 5.0, 230400: 10.0, 460800: 20.0, 921600: 40.0}
"""~70 % of the link for f32 [128, 3] windows (PROTOCOL.md section 10)."""


@dataclass(frozen=True)
class LatencyFigures:
    baud: int
    window_rate_hz: float
    triggers: int
    answered: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class ReconnectFigures:
    unplug_s: float
    runs: int
    median_s: float
    max_s: float


@dataclass(frozen=True)
class FloodFigures:
    baud: int
    seconds: float
    garbage_bytes: int
    triggers_sent: int
    triggers_acked: int
    host_nacks_sent: int
    decoder: dict[str, int]


class _Answerer:
    """Host application: answers every TRIGGER with a RESULT naming it."""

    def __init__(self) -> None:
        self.session: Session | None = None

    def __call__(self, message: Message) -> None:
        if isinstance(message, Trigger) and self.session is not None:
            self.session.send(Result(message.seq, message.seq, 0, 1000, Verdict.PASS))


def _host(path: str, baud: int) -> tuple[Session, _Answerer]:
    answerer = _Answerer()
    transport = PacedTransport(SerialTransport(path, TransportConfig(baudrate=baud, backoff_min_s=0.1)), baud)
    session = Session(transport, on_message=answerer)
    answerer.session = session
    return session, answerer


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_latency(baud: int, triggers: int, folder: Path) -> LatencyFigures:
    rate = WINDOW_RATES[baud]
    with VirtualPort(folder / f"lat{baud}") as port:
        config = SimulatorConfig(
            rate_hz=rate, trigger_every_s=0.0, mode=SensorMode.NORMAL, seed=1, uart_baud=baud
        )
        sim = Simulator(FdTransport(port.master_fd), config)
        host, _ = _host(port.path, baud)
        sim.start()
        host.start()
        try:
            host.wait_ready(10.0)
            sim.session.wait_ready(10.0)
            rng = random.Random(baud)
            sent = []
            for _ in range(triggers):
                sent.append(sim.send_trigger())
                time.sleep(rng.uniform(0.05, 0.15))  # photo-eye edges at random phases of the stream
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(sim.results) < len(sent):
                time.sleep(0.05)
            latencies = []
            for result, applied in sim.results:
                fired = sim.trigger_time(result.ref_seq)
                if fired is not None:
                    latencies.append((applied - fired) * 1000)
        finally:
            host.stop()
            sim.stop()
    return LatencyFigures(
        baud,
        rate,
        len(sent),
        len(latencies),
        round(statistics.median(latencies), 1) if latencies else -1.0,
        round(_percentile(latencies, 0.99), 1) if latencies else -1.0,
        round(max(latencies), 1) if latencies else -1.0,
    )


def measure_reconnect(runs: int, unplug_s: float, folder: Path) -> ReconnectFigures:
    port = VirtualPort(folder / "replug")
    port.open()
    sim = Simulator(FdTransport(port.master_fd), SimulatorConfig(rate_hz=0.0, trigger_every_s=0.0))
    host, _ = _host(port.path, 115200)
    ready = threading.Event()
    host.add_state_listener(lambda state: ready.set() if state.value == "ready" else ready.clear())
    sim.start()
    host.start()
    times = []
    try:
        host.wait_ready(10.0)
        for _ in range(runs):
            sim.stop()
            port.close()  # unplug: the path now points nowhere
            while ready.is_set():
                time.sleep(0.01)
            time.sleep(unplug_s)
            port.open()  # replug: a new pty behind the same path
            sim = Simulator(FdTransport(port.master_fd), SimulatorConfig(rate_hz=0.0, trigger_every_s=0.0))
            replugged = time.monotonic()
            sim.start()
            ready.wait(30.0)
            times.append(time.monotonic() - replugged)
    finally:
        host.stop()
        sim.stop()
        port.close()
        port.remove_link()
    return ReconnectFigures(unplug_s, runs, round(statistics.median(times), 3), round(max(times), 3))


def measure_flood(baud: int, seconds: float, folder: Path) -> FloodFigures:
    rng = random.Random(7)
    with VirtualPort(folder / "flood") as port:
        device = Session(PacedTransport(FdTransport(port.master_fd), baud), device_session_config())
        host, _ = _host(port.path, baud)
        device.start()
        host.start()
        garbage = 0
        deliveries = []
        try:
            host.wait_ready(10.0)
            device.wait_ready(10.0)
            end = time.monotonic() + seconds
            chunk = max(64, baud // 10 // 20)  # ~50 ms of line time per chunk
            while time.monotonic() < end:
                noise = bytes(rng.getrandbits(8) for _ in range(chunk))
                device.transport.write(noise)
                garbage += len(noise)
                deliveries.append(device.send(Trigger(0, 0)))
                time.sleep(0.05)
            for delivery in deliveries:
                delivery.wait(3.0)
            stats = host.stats()
        finally:
            host.stop()
            device.stop()
    acked = sum(d.status is DeliveryStatus.ACKED for d in deliveries)
    decoder = {k: v for k, v in stats.decoder.as_dict().items() if v}
    return FloodFigures(baud, seconds, garbage, len(deliveries), acked, stats.counters.nacks_tx, decoder)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.linkbench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--baud", type=int, nargs="+", default=[115200, 921600], choices=sorted(WINDOW_RATES))
    parser.add_argument("--triggers", type=int, default=200)
    parser.add_argument("--replugs", type=int, default=5)
    parser.add_argument("--unplug-s", type=float, default=8.0)
    parser.add_argument("--flood-s", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="linkbench-") as tmp:
        folder = Path(tmp)
        report: dict[str, object] = {
            "latency": [asdict(measure_latency(b, args.triggers, folder)) for b in args.baud],
            "reconnect": asdict(measure_reconnect(args.replugs, args.unplug_s, folder)),
            "flood": asdict(measure_flood(args.baud[0], args.flood_s, folder)),
            "cpu_count": os.cpu_count(),
        }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
