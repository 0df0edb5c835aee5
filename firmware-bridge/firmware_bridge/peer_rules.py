"""Protocol 1.1 rules that depend on our identity and the peer's HELLO (pure functions, no state).

* :func:`refusal` -- R4/R9: why a HELLO must be refused (version ranges, message-table hash).
* :func:`may_send` -- R8: a type is sent only if the peer advertised it (1.1-only types only to 1.1).
* :func:`syncs_time` -- section 9.2: whether this side runs time sync with the peer.
"""

from dataclasses import dataclass

from firmware_bridge.identity import Identity
from firmware_bridge.messages import CAPABILITY_OF, MINOR1_TYPES, Capability, Hello
from firmware_bridge.schema import SCHEMA_HASHES


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    schema_mismatch: bool


def refusal(ours: Identity, hello: Hello) -> Refusal | None:
    if max(ours.min_version, hello.min_version) > min(ours.max_version, hello.max_version):
        return Refusal(f"peer protocol versions {hello.min_version}..{hello.max_version} unsupported", False)
    if hello.minor_version is None or ours.minor_version == 0 or hello.minor not in SCHEMA_HASHES:
        return None  # a 1.0 peer, or a newer minor whose table we cannot check
    expected = SCHEMA_HASHES[hello.minor]
    if hello.schema_hash != expected:
        return Refusal(f"peer message table hash {hello.schema_hash:#010x} != {expected:#010x}", True)
    return None


def may_send(ours: Identity, peer: Hello | None, type_code: int) -> bool:
    if type_code in MINOR1_TYPES and (ours.minor_version == 0 or (peer is not None and peer.minor == 0)):
        return False
    if peer is None:
        return True  # before the peer's HELLO: 1.0 behaviour
    capability = CAPABILITY_OF.get(type_code)
    return capability is None or bool(peer.capabilities & capability)


def syncs_time(ours: Identity, peer: Hello | None) -> bool:
    return (
        peer is not None
        and peer.minor > 0
        and ours.minor_version > 0
        and bool(peer.capabilities & Capability.TIME_SYNC)
    )
