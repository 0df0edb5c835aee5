"""Decoder fuzz benchmark: feeds random and mutated inputs and reports rate, counters and max buffer.

``python -m firmware_bridge.fuzzbench --count 1000000 [--seed N]``

After every input a delimiter and a known "sentinel" frame are fed; the sentinel must decode
(resynchronisation). Exit status 1 if the decoder raised, exceeded its buffer bound or failed to
resynchronise.
"""

import argparse
import random
import struct
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from firmware_bridge import cobs
from firmware_bridge.codec import Decoder, DecoderStats, encode, encode_raw
from firmware_bridge.crc import crc16
from firmware_bridge.golden import CASES
from firmware_bridge.messages import Heartbeat, Message
from firmware_bridge.protocol import MAX_ENCODED_FRAME

SENTINEL = Heartbeat(0xC0FFEE, 1, 2, 3, 4, seq=0xBEEF)
_CORPUS_RAW: tuple[bytes, ...] = tuple(encode_raw(message) for _, message in CASES)
_CORPUS_WIRE: tuple[bytes, ...] = tuple(encode(message) for _, message in CASES)


def _random_bytes(rng: random.Random) -> bytes:
    size = rng.choice((rng.randint(0, 16), rng.randint(0, 300), rng.randint(0, 3 * MAX_ENCODED_FRAME)))
    return rng.randbytes(size)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = rng.randrange(256)
        elif op == 2:
            buf.insert(pos, rng.randrange(256))
        elif op == 3 and buf:
            del buf[pos % len(buf)]
        else:
            del buf[pos:]
    return bytes(buf)


def _mutated_wire(rng: random.Random) -> bytes:
    return _mutate(rng, rng.choice(_CORPUS_WIRE))


def _mutated_raw(rng: random.Random) -> bytes:
    """Mutate header/payload, fix up the CRC half of the time, then frame: exercises payload parsing."""
    raw = _mutate(rng, rng.choice(_CORPUS_RAW)[:-2])
    crc = crc16(raw) if rng.random() < 0.5 else rng.randrange(0x10000)
    return cobs.encode(raw + struct.pack("<H", crc)) + b"\x00"


def _concatenation(rng: random.Random) -> bytes:
    parts = [rng.choice((_random_bytes, _mutated_wire, _mutated_raw))(rng) for _ in range(rng.randint(2, 4))]
    parts.insert(rng.randrange(len(parts) + 1), rng.choice(_CORPUS_WIRE))
    return b"".join(parts)


def _oversized(rng: random.Random) -> bytes:
    size = MAX_ENCODED_FRAME + rng.randint(1, 512)
    return bytes(rng.randint(1, 255) for _ in range(8)) * (size // 8 + 1) + b"\x00"


GENERATORS: dict[str, Callable[[random.Random], bytes]] = {
    "random": _random_bytes,
    "mutated_wire": _mutated_wire,
    "mutated_raw": _mutated_raw,
    "concatenation": _concatenation,
    "oversized": _oversized,
}
"""Registry of input generators (chosen uniformly)."""


@dataclass(frozen=True, slots=True)
class FuzzReport:
    inputs: int
    bytes_fed: int
    seconds: float
    messages: int
    resync_failures: int
    exceptions: int
    max_buffered: int
    stats: DecoderStats
    first_exception: str = ""

    @property
    def ok(self) -> bool:
        return self.exceptions == 0 and self.resync_failures == 0 and self.max_buffered <= MAX_ENCODED_FRAME

    def render(self) -> str:
        rate = self.inputs / self.seconds if self.seconds > 0 else 0.0
        mbps = self.bytes_fed / self.seconds / 1e6 if self.seconds > 0 else 0.0
        lines = [
            f"inputs          {self.inputs}",
            f"bytes fed       {self.bytes_fed}",
            f"elapsed         {self.seconds:.2f} s ({rate:,.0f} inputs/s, {mbps:.2f} MB/s)",
            f"messages        {self.messages} (excluding sentinels)",
            f"resync failures {self.resync_failures}",
            f"exceptions      {self.exceptions}",
            f"max buffered    {self.max_buffered} (bound {MAX_ENCODED_FRAME})",
        ]
        lines += [f"  {name:<14}{value}" for name, value in self.stats.as_dict().items()]
        if self.first_exception:
            lines.append(f"first exception:\n{self.first_exception}")
        lines.append("RESULT: " + ("OK" if self.ok else "FAIL"))
        return "\n".join(lines) + "\n"


def _feed(decoder: Decoder, data: bytes) -> list[Message]:
    return decoder.feed(data)


def run(count: int, seed: int = 0) -> FuzzReport:
    """Feed ``count`` generated inputs into one decoder and collect the report."""
    rng = random.Random(seed)
    decoder = Decoder()
    generators = list(GENERATORS.values())
    sentinel = b"\x00" + encode(SENTINEL)
    messages = resync_failures = exceptions = max_buffered = bytes_fed = 0
    first_exception = ""
    start = time.perf_counter()
    for _ in range(count):
        data = rng.choice(generators)(rng)
        bytes_fed += len(data)
        try:
            messages += len(_feed(decoder, data))
            max_buffered = max(max_buffered, decoder.buffered)
            decoded = _feed(decoder, sentinel)
        except Exception:
            exceptions += 1
            first_exception = first_exception or f"input {data.hex()}\n{traceback.format_exc()}"
            decoder.reset()
            continue
        if not decoded or decoded[-1] != SENTINEL:
            resync_failures += 1
        messages += max(0, len(decoded) - 1)
    elapsed = time.perf_counter() - start
    return FuzzReport(
        inputs=count,
        bytes_fed=bytes_fed,
        seconds=elapsed,
        messages=messages,
        resync_failures=resync_failures,
        exceptions=exceptions,
        max_buffered=max(max_buffered, decoder.stats.max_buffered),
        stats=decoder.stats,
        first_exception=first_exception,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.fuzzbench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=100_000, help="number of inputs (default 100000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = run(args.count, args.seed)
    sys.stdout.write(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
