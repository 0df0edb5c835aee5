"""Everything a running appliance is made of, built from a Config, started and stopped in order."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.auth.ratelimit import RateLimiter
from appliance.auth.store import AuthStore
from appliance.backends.registry import configure_backends, planned_workers
from appliance.config import Config
from appliance.errors import ApplianceError
from appliance.health import Health, Observation, assess
from appliance.models.registry import Registry
from appliance.pipeline.cache import ResultCache
from appliance.pipeline.direct import DirectRunner
from appliance.pipeline.inspection import Inspector
from appliance.pipeline.jobs import JobStore
from appliance.pipeline.pipeline import Pipeline, PipelineOptions
from appliance.pipeline.recorder import Recorder
from appliance.pipeline.results import ResultBus
from appliance.pipeline.runtime import ModelManager, RuntimeOptions, validate_model
from appliance.plc.outputs import Output, start_outputs, stop_outputs
from appliance.serial_sink import SerialSink
from appliance.settings import Change, ConfigFile
from appliance.sources.registry import create_source
from appliance.sources.serial import SerialLink
from appliance.store.reader import ResultReader
from appliance.store.retention import RetentionPolicy
from appliance.store.writer import ResultWriter, WriterOptions
from appliance.watchdog import Watchdog

logger = logging.getLogger(__name__)


def open_registry(data_dir: Path) -> Registry:
    return Registry(data_dir / "models", validate_model)


def writer_options(config: Config) -> WriterOptions:
    s = config.store
    return WriterOptions(
        queue_size=s.queue_size,
        batch_size=s.batch_size,
        flush_interval_s=s.flush_interval_ms / 1000,
        snapshot_quality=s.snapshot_quality,
        retention_interval_s=s.retention_interval_s,
        retention=RetentionPolicy(s.max_age_days, s.max_rows, s.max_bytes),
    )


def pipeline_options(config: Config) -> PipelineOptions:
    snapshot_every = config.pipeline.snapshot_every or (1 if config.store.snapshots != "off" else 0)
    triggered = config.source.mode == "triggered"
    workers = planned_workers(config.backend)  # one worker per context, whatever backend runs the model
    return PipelineOptions(config.pipeline.queue_size, workers, snapshot_every, triggered)


def runtime_options(config: Config) -> RuntimeOptions:
    b, p = config.backend, config.pipeline
    workers = planned_workers(b)
    return RuntimeOptions(
        order=b.order, threads=b.threads, workers=workers, ring=2 * p.queue_size + workers + 2
    )


@dataclass
class Services:
    config: Config
    registry: Registry
    manager: ModelManager
    bus: ResultBus
    pipeline: Pipeline
    writer: ResultWriter | None
    reader: ResultReader
    auth: AuthStore
    limiter: RateLimiter
    settings: ConfigFile
    inspector: Inspector
    jobs: JobStore
    cache: ResultCache
    direct: DirectRunner
    outputs: list[Output] = field(default_factory=list)
    link: SerialLink | None = None
    sink: SerialSink | None = None
    recorder: Recorder | None = None
    watchdog: Watchdog = field(init=False)
    started: float = field(default_factory=time.time)
    ready: bool = False
    restart_requested: bool = False  # `appliance serve` re-executes itself after the server stops
    request_stop: Callable[[], None] | None = None  # set by whoever runs the HTTP server

    def __post_init__(self) -> None:
        self.watchdog = Watchdog(self.health)

    @classmethod
    def build(cls, config: Config, path: Path | None = None) -> Services:
        configure_backends(config.backend)
        data = config.data_dir
        registry = open_registry(data)
        manager = ModelManager(registry, runtime_options(config))
        bus = ResultBus()
        writer = ResultWriter(data, writer_options(config)) if config.store.enabled else None
        link = SerialLink(config.serial) if config.serial.port else None
        pipeline = Pipeline(manager, bus, pipeline_options(config), create_source(config.source, link))
        reader = ResultReader(writer.path if writer else data / "results.db")
        limiter = RateLimiter(config.auth.rate_per_s, config.auth.burst)
        return cls(
            config=config,
            registry=registry,
            manager=manager,
            bus=bus,
            pipeline=pipeline,
            writer=writer,
            reader=reader,
            auth=AuthStore(data),
            limiter=limiter,
            settings=ConfigFile(config, path),
            inspector=Inspector(bus, config.inspection),
            jobs=JobStore(config.server.job_ttl_s, config.server.max_jobs),
            cache=ResultCache(config.server.cache_entries),
            direct=DirectRunner(registry, config.backend.threads),
            link=link,
        )

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()
            self.recorder = Recorder(self.writer, self.config.store.snapshots)
            self.bus.subscribe("store", self.recorder)
        self._initial_model()
        self.manager.start_watching()
        self.pipeline.start()
        self.outputs = start_outputs(self)
        if self.link is not None:
            self.link.start()
            self.sink = SerialSink(self.link, self.inspector, lambda: self.pipeline)
            self.sink.start()
            self.bus.subscribe("serial", self.sink)
        self.ready = True
        self.watchdog.start()
        logger.info("appliance ready in %.2f s", time.time() - self.started)

    def health(self) -> Health:
        """Producing results? (appliance/health.py: endpoints, status, dashboard, watchdog)"""
        source = self.pipeline.source
        return assess(
            Observation(
                started=self.ready,
                stages_alive=self.pipeline.alive(),
                model_loaded=self.manager.current() is not None,
                writer=self.writer,
                source=source.status() if source is not None else None,
            )
        )

    def healthy(self) -> bool:
        return self.health().ok

    def _initial_model(self) -> None:
        if self.registry.active() is None and self.config.model.name:
            try:
                self.manager.activate(self.config.model.name)
            except ApplianceError as err:
                logger.error("cannot activate model %r from config: %s", self.config.model.name, err)
        self.manager.load_active()
        if self.manager.current() is None:
            logger.warning("no active model: results start once a model is added and activated")

    def apply(self, change: Change) -> None:
        """Write a validated change and apply what can be applied while running."""
        self.settings.commit(change)
        old, new = self.config, change.config
        self.config = new
        logging.getLogger().setLevel(new.log.level)
        self.inspector.rule = new.inspection
        self.limiter.rate, self.limiter.burst = new.auth.rate_per_s, float(new.auth.burst)
        if self.writer is not None:
            self.writer.set_retention(writer_options(new).retention)
            if self.recorder is not None:
                self.recorder.snapshots = new.store.snapshots
        if old.plc != new.plc:
            stop_outputs(self.outputs)
            self.outputs = start_outputs(self)
        if (old.source, old.pipeline) != (new.source, new.pipeline) and not change.restart_needed:
            self.restart_pipeline()

    def restart_pipeline(self) -> None:
        """Stop the pipeline (queued work finishes), then start one on the configured source."""
        self.pipeline.stop()
        source = create_source(self.config.source, self.link)
        self.pipeline = Pipeline(self.manager, self.bus, pipeline_options(self.config), source)
        self.pipeline.start()
        logger.info("pipeline restarted on source %s (%s)", self.config.source.name, self.config.source.kind)

    def stop(self) -> None:
        self.ready = False
        self.watchdog.stop(restarting=self.restart_requested)
        stop_outputs(self.outputs)  # first: a trigger already running can still finish
        self.outputs = []
        if self.sink is not None:
            self.sink.stop()
        self.pipeline.stop()
        if self.link is not None:
            self.link.stop()
        self.jobs.close()
        self.manager.close()
        if self.writer is not None:
            self.writer.close()
