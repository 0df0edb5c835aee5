"""The NG-first archive: quota deletes OK before NG, oldest first; FTP push to a real local server."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

with warnings.catch_warnings():  # pyftpdlib 2.x on Python 3.11 imports the deprecated asyncore
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

from appliance.inspection.archive import Archive, FtpTarget, OkSampler, parse_name
from appliance.inspection.recipe import SnapshotPolicy
from tests.conftest import free_port, wait_for

IMAGE = b"\xff\xd8" + b"x" * 998  # 1000 bytes standing in for a JPEG


def test_names_carry_job_verdict_and_time(tmp_path: Path) -> None:
    archive = Archive(tmp_path, 10_000)
    path = archive.keep(IMAGE, 7, False, 1_764_629_101.123456, 42)
    assert path is not None and path.name == "20251201T224501.123456Z_job007_NG_42.jpg"
    item = parse_name(path, 1000)
    assert item is not None and (item.job, item.ng, item.seq) == (7, True, 42)


def test_quota_deletes_ok_before_ng_oldest_first(tmp_path: Path) -> None:
    archive = Archive(tmp_path, 5_000)
    for seq, ok in enumerate([False, True, False, True, True]):
        archive.keep(IMAGE, 1, ok, 1000.0 + seq, seq)
    assert archive.used_bytes() == 5000
    archive.keep(IMAGE, 1, False, 2000.0, 10)  # full: the oldest OK (seq 1) goes
    assert sorted(f.seq for f in archive.images()) == [0, 2, 3, 4, 10]
    for seq in (11, 12, 13):
        archive.keep(IMAGE, 1, False, 2000.0 + seq, seq)  # OKs 3, 4 go, then NG 0
    assert all(f.ng for f in archive.images())
    archive.keep(IMAGE, 1, False, 3000.0, 20)  # only NG left: the oldest NG (2) goes
    assert sorted(f.seq for f in archive.images()) == [10, 11, 12, 13, 20]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.path.name for f in archive.images())
    assert Archive(tmp_path, 5_000).used_bytes() == 5000  # a restart finds the same files
    assert archive.keep(b"x" * 6000, 1, False, 4000.0, 30) is None  # bigger than the whole quota


def test_snapshot_policy_and_ok_sampling(tmp_path: Path) -> None:
    archive = Archive(tmp_path, 10_000)
    assert archive.wanted(False, SnapshotPolicy("ng"))
    assert not archive.wanted(True, SnapshotPolicy("ng", 1.0))
    assert not archive.wanted(False, SnapshotPolicy("none"))
    sampler = OkSampler()
    assert sum(sampler.take(0.25) for _ in range(100)) == 25
    assert sum(sampler.take(0.0) for _ in range(10)) == 0


@dataclass
class LocalFtp:
    port: int
    root: Path
    server: FTPServer | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        authorizer = DummyAuthorizer()
        authorizer.add_user("line3", "secret-pw", str(self.root), perm="elradfmw")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
        self.server = FTPServer(("127.0.0.1", self.port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"timeout": 0.1}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.close_all()
        self.thread.join(10)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir())


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[LocalFtp]:
    root = tmp_path / "ftp"
    root.mkdir()
    server = LocalFtp(free_port(), root)
    yield server
    if server.server is not None and server.thread is not None and server.thread.is_alive():
        server.stop()


def test_ftp_push_retries_until_the_server_is_back(tmp_path: Path, ftp: LocalFtp) -> None:
    ftp.start()
    target = FtpTarget("127.0.0.1", ftp.port, "line3", "secret-pw", timeout_s=5, retry_s=0.2)
    archive = Archive(tmp_path / "archive", 100_000, target)
    try:
        first = archive.keep(IMAGE, 2, False, 1000.0, 1)
        assert first is not None
        wait_for(lambda: ftp.files() == [first.name])
        assert (ftp.root / first.name).read_bytes() == IMAGE
        ftp.stop()
        second = archive.keep(IMAGE, 2, False, 1001.0, 2)
        assert second is not None
        assert archive.pusher is not None
        wait_for(lambda: archive.pusher is not None and archive.pusher.failures >= 2)
        assert archive.pusher.pending() == 1 and archive.pusher.last_error
        ftp.start()  # the same port again
        wait_for(lambda: second.name in ftp.files())
        wait_for(lambda: archive.pusher is not None and archive.pusher.pending() == 0)
        assert ftp.files() == sorted([first.name, second.name])  # no .part left behind
        assert archive.pusher.status()["pushed"] == 2 and archive.pusher.last_error is None
    finally:
        archive.close()


def test_pushes_pending_at_shutdown_are_resumed_after_a_restart(tmp_path: Path, ftp: LocalFtp) -> None:
    """Server down: two NG images wait; the appliance stops. The next start (server back) pushes
    both, and only those: one the quota deleted meanwhile is not asked for."""
    target = FtpTarget("127.0.0.1", ftp.port, "line3", "secret-pw", timeout_s=5, retry_s=0.2)
    root = tmp_path / "archive"
    archive = Archive(root, 100_000, target)
    try:
        kept = [archive.keep(IMAGE, 3, False, 2000.0 + i, i) for i in range(3)]
        assert all(kept) and archive.pusher is not None
        wait_for(lambda: archive.pusher is not None and archive.pusher.failures >= 1)
        assert archive.pusher.pending() == 3
    finally:
        archive.close()
    gone = kept[0]
    assert gone is not None
    gone.unlink()  # e.g. removed by hand while the appliance was off
    ftp.start()
    again = Archive(root, 100_000, target)
    try:
        assert again.pusher is not None and again.pusher.resumed == 2
        wanted = sorted(p.name for p in kept[1:] if p is not None)
        wait_for(lambda: ftp.files() == wanted)
        wait_for(lambda: again.pusher is not None and again.pusher.pending() == 0)
        assert list((root / ".push").iterdir()) == []  # nothing left to resume
    finally:
        again.close()
    third = Archive(root, 100_000, target)
    try:
        assert third.pusher is not None and third.pusher.resumed == 0
    finally:
        third.close()
