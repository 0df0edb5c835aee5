"""`appliance serve`: a small supervisor process that runs the server in a child and restarts it.

Restart from the API or the UI ends the child with RESTART_EXIT after a graceful stop; the
supervisor then starts a new child (a new PID) on the same port. Any other exit of the child ends
the supervisor with the child's code, so a crash is still a crash for systemd (Restart=on-failure),
and SIGTERM/SIGINT to the supervisor stop the child gracefully and then the supervisor (exit 0).
Restarts never reach systemd, so they do not count against the unit's start limit. The child sends
the sd_notify messages itself (NotifyAccess=all in the unit). `--worker` runs the server directly.
A child whose supervisor is gone (killed with SIGKILL, say) stops by itself: it would otherwise keep the
port, and the next supervisor's server could not start.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from appliance.config import Config
from appliance.memory import tune_malloc
from appliance.watchdog import extend_for_restart

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

    from appliance.services import Services

logger = logging.getLogger(__name__)

RESTART_EXIT = 75  # EX_TEMPFAIL: "stopped to be started again"
GRACEFUL_STOP_S = 1  # uvicorn's wait for open requests; the services stop after it
RESTART_WATCHDOG_S = 300.0  # the systemd watchdog timeout while a new server starts (TimeoutStartSec)
FAST_RESTART_S = 5.0  # a child that dies faster than this after a restart is not restarted in a loop
SUPERVISOR_ENV = "APPLIANCE_SUPERVISOR_PID"  # set for the child: the process it must not outlive
ORPHAN_CHECK_S = 1.0


def worker_argv(argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "appliance", "serve", "--worker", *argv]


class Supervisor:
    """Runs `appliance serve --worker` children, one at a time, until told to stop."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.restarts = 0

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # once: a second SIGINT would make uvicorn force-exit

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        while True:
            started = time.monotonic()
            # its own process group: a terminal's Ctrl-C reaches only us, and we forward one SIGTERM
            env = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
            self.child = subprocess.Popen(worker_argv(self.argv), process_group=0, env=env)
            if self.stopping.is_set():  # a signal came while it was being started
                self.child.terminate()
            code = self.child.wait()
            if self.stopping.is_set():
                return 0
            if code != RESTART_EXIT:
                logger.error("appliance server exited with %s", code)
                return code if code > 0 else 128 - code
            self.restarts += 1
            logger.info("restarting the appliance server (restart %d)", self.restarts)
            extend_for_restart(RESTART_WATCHDOG_S)
            if time.monotonic() - started < FAST_RESTART_S:
                time.sleep(0.2)  # never a busy loop


def http_config(app: Starlette, config: Config, port: int | None = None) -> uvicorn.Config:
    """uvicorn on uvloop with the httptools parser, chosen explicitly: 'auto' silently falls back to
    asyncio and h11 when they are missing, which costs milliseconds per request."""
    import uvicorn  # noqa: PLC0415 heavy: the `appliance serve` supervisor process must not load the server

    return uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port if port is None else port,
        loop="uvloop",
        http="httptools",
        log_level=config.log.level.lower(),
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_STOP_S,
    )


def serve(config: Config, config_path: Path | None) -> int:
    """The server itself: services, HTTP, and RESTART_EXIT when a restart was asked for."""
    import uvicorn  # noqa: PLC0415 heavy: the `appliance serve` supervisor process must not load the server

    from appliance.api.app import create_app  # noqa: PLC0415 heavy: the `appliance serve` supervisor process must not load the server
    from appliance.services import Services  # noqa: PLC0415 heavy: the `appliance serve` supervisor process must not load the server

    tune_malloc()  # before the first frame buffer: RSS creep under distinct-image load (appliance.memory)

    services = Services.build(config, config_path)
    server = uvicorn.Server(http_config(create_app(services), config))

    def request_stop() -> None:
        server.should_exit = True  # the same graceful path as SIGTERM, without re-raising a signal

    services.request_stop = request_stop
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor is not None:
        threading.Thread(
            target=stop_when_orphaned, args=(int(supervisor), request_stop), name="orphan-guard", daemon=True
        ).start()
    try:
        server.run()
    finally:
        if services.ready:  # the lifespan did not run its shutdown (startup failed half-way)
            services.stop()
    if services.restart_requested:
        logger.info("stopped for a restart")
        quick_exit(services, RESTART_EXIT)
    return 0 if server.started else 1


def stop_when_orphaned(supervisor: int, request_stop: Callable[[], None]) -> None:
    """The supervisor's death re-parents us (to init or a subreaper): then stop as SIGTERM would."""
    while os.getppid() == supervisor:
        time.sleep(ORPHAN_CHECK_S)
    logger.error("the `appliance serve` supervisor (pid %d) is gone: stopping", supervisor)
    request_stop()


def quick_exit(services: Services, code: int) -> None:
    """Everything is stopped and saved: skip the interpreter's teardown (seconds with the native
    libraries loaded), so the new server starts sooner."""
    if services.writer is not None:
        services.writer.flush(timeout=5.0)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(args: argparse.Namespace, argv: Sequence[str], config: Config, path: Path | None) -> int:
    if args.worker:
        return serve(config, path)
    return Supervisor(argv).run()
