"""Asynchronous API inspections (/api/v1/jobs): an id at once, the result later; finished ones expire.

Not to be confused with inspection jobs (recipes, appliance/inspection/store.py): these are pending
requests, kept under the public route and JSON names `job`."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import ApplianceError, Busy, NotFound, error_code

JOB_THREADS = 2


@dataclass
class Pending:
    id: str
    created: float
    state: str = "queued"  # queued, running, done, failed
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "state": self.state,
            "created": self.created,
            "finished": self.finished,
            "result": self.result,
            "error": self.error,
            "error_code": self.code,
        }


class PendingStore:
    def __init__(self, ttl_s: float, max_jobs: int) -> None:
        self.ttl_s = ttl_s
        self.max_jobs = max_jobs
        self._jobs: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(JOB_THREADS, thread_name_prefix="job")

    def _expire(self, now: float) -> None:
        for job_id in [j.id for j in self._jobs.values() if j.finished and now - j.finished > self.ttl_s]:
            del self._jobs[job_id]

    def submit(self, work: Callable[[], dict[str, Any]]) -> Pending:
        now = time.time()
        with self._lock:
            self._expire(now)
            if len(self._jobs) >= self.max_jobs:
                raise Busy(f"{self.max_jobs} jobs are pending or kept; fetch or let them expire first")
            job = Pending(secrets.token_hex(8), now)
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Pending, work: Callable[[], dict[str, Any]]) -> None:
        job.state = "running"
        try:
            job.result = work()
            job.state = "done"
        except ApplianceError as err:
            job.state, job.error, job.code = "failed", str(err), error_code(err)
        except Exception as err:  # a job must always finish, whatever went wrong
            job.state, job.error, job.code = "failed", f"internal error: {err}", error_code(err)
        job.finished = time.time()

    def get(self, job_id: str) -> Pending:
        with self._lock:
            self._expire(time.time())
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} (unknown or expired after {self.ttl_s:.0f} s)")
        return job

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
