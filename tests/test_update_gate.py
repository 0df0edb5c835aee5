"""The slot gate (appliance/slotgate.py) against a fake rauc: marked good only once healthy; marked bad
and rebooted when not healthy within the deadline or when the service gave up, provided the other slot
is good; a slot the boot loader gave up on is marked bad; every verdict recorded with its reason. The
health probe is the real HTTP one against a real server where that is the point."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appliance.slotgate import GateOptions, System, http_probe, run_gate
from tests.conftest import LiveServer, config_for, start_server
from tests.test_update import Device


class Machine:
    """Health answers in order, a fake clock advanced by sleep, and a record of reboots."""

    def __init__(self, answers: list[tuple[bool, str]], failed_after: int | None = None) -> None:
        self.answers = answers
        self.failed_after = failed_after
        self.now = 0.0
        self.asked = 0
        self.reboots = 0

    def healthy(self) -> tuple[bool, str]:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer

    def failed(self) -> bool:
        return self.failed_after is not None and self.asked >= self.failed_after

    def reboot(self) -> None:
        self.reboots += 1

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def system(self, deadline_s: float = 60.0) -> System:
        return System(
            healthy=self.healthy,
            service_failed=self.failed,
            reboot=self.reboot,
            clock=lambda: self.now,
            sleep=self.sleep,
            options=GateOptions(deadline_s=deadline_s, interval_s=5.0),
        )


@pytest.fixture
def updated(tmp_path: Path) -> Device:
    """Slot B freshly installed (0.1.0+2) and booted; A (0.1.0) good."""
    device = Device(tmp_path)
    device.updater.install(device.bundle("v2.raucb"), source="api")
    device.update_state(booted="B")
    return device


def _good(device: Device, bootname: str) -> bool:
    return bool(next(s for s in device.state()["slots"] if s["bootname"] == bootname)["good"])


def test_healthy_after_a_while_is_marked_good(updated: Device) -> None:
    machine = Machine([(False, "starting: the services are not running yet")] * 3 + [(True, "ok")])
    verdict = run_gate(updated.updater, machine.system())
    assert verdict.good and verdict.slot == "B" and machine.reboots == 0
    assert ["status", "mark-good", "booted"] in updated.state()["calls"]
    assert updated.events()[-1]["kind"] == "good" and updated.events()[-1]["version"] == "0.1.0+2"


def test_never_healthy_falls_back_after_the_deadline(updated: Device) -> None:
    machine = Machine([(False, "model: no model is loaded")])
    verdict = run_gate(updated.updater, machine.system(deadline_s=60))
    assert not verdict.good and verdict.rebooting and machine.reboots == 1
    assert machine.now >= 60
    assert not _good(updated, "B") and _good(updated, "A")
    event = updated.events()[-1]
    assert event["kind"] == "bad" and event["slot"] == "B" and event["fallback"] == "A"
    assert event["reason"] == "not healthy within 60 s: model: no model is loaded"
    # after the reboot into A, status says why
    updated.update_state(booted="A")
    rollback = updated.updater.status().rollback
    assert rollback is not None and rollback["slot"] == "B" and "no model is loaded" in rollback["reason"]


def test_a_service_that_gave_up_falls_back_before_the_deadline(updated: Device) -> None:
    machine = Machine([(False, "no answer from http://127.0.0.1:8080/api/v1/health")], failed_after=2)
    verdict = run_gate(updated.updater, machine.system(deadline_s=900))
    assert verdict.rebooting and machine.now < 900
    assert "appliance.service failed" in updated.events()[-1]["reason"]


def test_nothing_to_fall_back_to_stays_up(tmp_path: Path) -> None:
    device = Device(tmp_path)  # factory image: slot B empty
    machine = Machine([(False, "model: no model is loaded")])
    verdict = run_gate(device.updater, machine.system(deadline_s=30))
    assert not verdict.good and not verdict.rebooting and machine.reboots == 0
    assert _good(device, "A")  # never marked bad: it is the only system there is
    assert device.events()[-1]["kind"] == "unhealthy"


def test_a_slot_the_boot_loader_gave_up_on_is_marked_bad(updated: Device) -> None:
    updated.update_state(booted="A")  # B was installed but A came up: B used up its boot attempts
    machine = Machine([(True, "ok")])
    verdict = run_gate(updated.updater, machine.system())
    assert verdict.good and verdict.slot == "A"
    assert not _good(updated, "B")
    bad = [e for e in updated.events() if e["kind"] == "bad"]
    assert len(bad) == 1 and bad[0]["slot"] == "B" and "boot attempts" in bad[0]["reason"]
    rollback = updated.updater.status().rollback
    assert rollback is not None and rollback["slot"] == "B"
    # the next boot of A does not accuse B again
    run_gate(updated.updater, Machine([(True, "ok")]).system())
    assert len([e for e in updated.events() if e["kind"] == "bad"]) == 1


def test_a_new_install_clears_the_rollback_notice(updated: Device) -> None:
    run_gate(updated.updater, Machine([(False, "x")]).system(deadline_s=10))
    updated.update_state(booted="A")
    assert updated.updater.status().rollback is not None
    updated.updater.install(updated.bundle("v3.raucb", version="0.1.0+3"), source="usb")
    assert updated.updater.status().rollback is None


@pytest.fixture
def server(data_dir: Path) -> Iterator[LiveServer]:
    live = start_server(config_for(data_dir))
    yield live
    live.stop()


def test_http_probe_reads_the_real_health_endpoint(server: LiveServer, tmp_path: Path) -> None:
    ok, why = http_probe(f"{server.url}/api/v1/health")()
    health = httpx.get(f"{server.url}/api/v1/health").json()
    assert ok == (health["status"] == "ok")
    if not ok:
        assert why == "; ".join(health["reasons"])
    down, reason = http_probe("http://127.0.0.1:9/api/v1/health", timeout_s=2)()
    assert not down and "no answer" in reason
