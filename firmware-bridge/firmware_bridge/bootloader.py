"""Put a device into firmware-update mode (PROTOCOL.md R12), then hand the port to the vendor tool.

``python -m firmware_bridge.bootloader --port /dev/ttyACM0 [--baud 115200] [--then CMD ...]``

Opens the port, does the handshake, checks that the device advertises ``BOOTLOADER``, sends
ENTER_BOOTLOADER and waits for its ACK, closes the port, and (with ``--then``) runs the flashing
command, e.g. ``--then bossac -p /dev/ttyACM0 -e -w -v -R firmware.bin``. Stop the appliance's
serial link first (the port is opened exclusively). Exit status: 0 on success, 1 if the device
refused or does not support it, 2 if it did not answer.
"""

import argparse
import subprocess
import sys
from collections.abc import Sequence

from firmware_bridge.delivery import DeliveryStatus
from firmware_bridge.messages import Capability
from firmware_bridge.protocol import DEFAULT_BAUDRATE, SUPPORTED_BAUDRATES
from firmware_bridge.session import Session


def enter_bootloader(port: str, baudrate: int, timeout_s: float = 5.0) -> tuple[int, str]:
    """(exit status, message) of asking the device on ``port`` to enter its bootloader."""
    with Session.open(port, baudrate=baudrate) as session:
        if not session.wait_ready(timeout_s):
            return 2, f"no handshake with a device on {port} within {timeout_s} s"
        peer = session.peer
        if peer is None or not peer.capabilities & Capability.BOOTLOADER:
            name = "?" if peer is None else peer.firmware
            return 1, f"device {name} does not advertise BOOTLOADER (protocol 1.1 with a board hook)"
        delivery = session.enter_bootloader()
        status = delivery.wait(timeout_s)
    if status is DeliveryStatus.ACKED:
        return 0, f"device {peer.firmware} ({peer.device_id:#010x}) is entering its bootloader"
    return 1, f"device answered {status.value} (code {delivery.code})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.bootloader", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", required=True)
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUDRATE, choices=SUPPORTED_BAUDRATES)
    parser.add_argument("--then", nargs=argparse.REMAINDER, default=[], help="flashing command to run after")
    args = parser.parse_args(argv)
    code, text = enter_bootloader(args.port, args.baud)
    sys.stdout.write(text + "\n")
    if code != 0 or not args.then:
        return code
    return subprocess.run(args.then, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
