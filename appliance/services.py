"""Everything a running appliance is made of, built from a Config, started and stopped in order."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.auth.store import AuthStore
from appliance.config import Config
from appliance.errors import ApplianceError
from appliance.models.registry import Registry
from appliance.pipeline.pipeline import Pipeline, PipelineOptions
from appliance.pipeline.recorder import Recorder
from appliance.pipeline.results import ResultBus
from appliance.pipeline.runtime import ModelManager, RuntimeOptions, validate_model
from appliance.sources.registry import create_source
from appliance.store.reader import ResultReader
from appliance.store.retention import RetentionPolicy
from appliance.store.writer import ResultWriter, WriterOptions

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


def runtime_options(config: Config) -> RuntimeOptions:
    b, p = config.backend, config.pipeline
    return RuntimeOptions(
        order=b.order, threads=b.threads, workers=b.workers, ring=2 * p.queue_size + b.workers + 2
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
    started: float = field(default_factory=time.time)
    ready: bool = False

    @classmethod
    def build(cls, config: Config) -> Services:
        data = config.data_dir
        registry = open_registry(data)
        manager = ModelManager(registry, runtime_options(config))
        bus = ResultBus()
        writer = ResultWriter(data, writer_options(config)) if config.store.enabled else None
        snapshot_every = config.pipeline.snapshot_every or (1 if config.store.snapshots != "off" else 0)
        options = PipelineOptions(config.pipeline.queue_size, config.backend.workers, snapshot_every)
        pipeline = Pipeline(manager, bus, options, create_source(config.source))
        reader = ResultReader(writer.path if writer else data / "results.db")
        return cls(config, registry, manager, bus, pipeline, writer, reader, AuthStore(data))

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()
            self.bus.subscribe("store", Recorder(self.writer, self.config.store.snapshots))
        self._initial_model()
        self.manager.start_watching()
        self.pipeline.start()
        self.ready = True
        logger.info("appliance ready in %.2f s", time.time() - self.started)

    def _initial_model(self) -> None:
        if self.registry.active() is None and self.config.model.name:
            try:
                self.manager.activate(self.config.model.name)
            except ApplianceError as err:
                logger.error("cannot activate model %r from config: %s", self.config.model.name, err)
        self.manager.load_active()
        if self.manager.current() is None:
            logger.warning("no active model: results start once a model is added and activated")

    def stop(self) -> None:
        self.ready = False
        self.pipeline.stop()
        self.manager.close()
        if self.writer is not None:
            self.writer.close()
