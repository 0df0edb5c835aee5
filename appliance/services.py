"""Everything a running appliance is made of, built from a Config, started and stopped in order."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.auth.ratelimit import RateLimiter
from appliance.auth.store import AuthStore
from appliance.backends.registry import Backends, planned_workers
from appliance.config import Config, ConfigError, Problem
from appliance.config.file import Change, ConfigFile
from appliance.errors import ApplianceError, NotFound, SourceError
from appliance.health import Health, Observation, assess
from appliance.inspection.activation import JobSwitch
from appliance.inspection.archive import Archive
from appliance.inspection.counters import Counters
from appliance.inspection.dataset import Dataset
from appliance.inspection.feeder import Feeder
from appliance.inspection.parts import build_parts, hard_example_policy
from appliance.inspection.store import JobStore as RecipeStore
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry
from appliance.pipeline.cache import ResultCache
from appliance.pipeline.direct import DirectRunner
from appliance.pipeline.inspection import Inspector, TriggerOutcome
from appliance.pipeline.pending import PendingStore
from appliance.pipeline.pipeline import Pipeline, PipelineOptions
from appliance.pipeline.proof import FrameTap
from appliance.pipeline.results import Recorder, Result, ResultBus
from appliance.pipeline.runtime import ModelManager, RuntimeOptions, validate_model
from appliance.pipeline.sequence import Sequence
from appliance.plc.handshake import JobActions
from appliance.plc.outputs import Links, Output, start_outputs, stop_outputs
from appliance.plc.serial import SerialSink
from appliance.shadow.runner import ShadowRunner
from appliance.sources.registry import create_source
from appliance.sources.serial import SerialLink
from appliance.store.database import DB_NAME
from appliance.store.reader import ResultReader
from appliance.store.retention import RetentionPolicy
from appliance.store.writer import ResultWriter, WriterOptions
from appliance.watchdog import Watchdog

logger = logging.getLogger(__name__)


def open_registry(data_dir: Path, backends: Backends | None = None) -> Registry:
    return Registry(data_dir / "models", lambda manifest, path: validate_model(manifest, path, backends))


def writer_options(config: Config) -> WriterOptions:
    s = config.store
    return WriterOptions(
        queue_size=s.queue_size,
        batch_size=s.batch_size,
        flush_interval_s=s.flush_interval_ms / 1000,
        snapshot_quality=s.snapshot_quality,
        retention_interval_s=s.retention_interval_s,
        retention=RetentionPolicy(s.max_age_days, s.max_rows, s.max_bytes, s.min_free_bytes),
    )


def model_problems(registry: Registry, config: Config) -> list[Problem]:
    """What only a running appliance can check in a config: the named model exists in the registry."""
    name = config.model.name
    if not name:
        return []
    try:
        registry.get(name)
    except (NotFound, ApplianceError) as err:
        known = sorted({m.name for m in registry.list()})
        return [Problem("model.name", f"{err}; the registry has: {', '.join(known) or 'no models'}")]
    return []


def source_problem(config: Config, err: SourceError) -> ConfigError:
    """A source that cannot open, as a problem of the key that names it (answered 400)."""
    keys = {"video": "path", "folder": "path", "stream": "url", "camera": "device"}
    key = keys.get(config.source.kind, "kind")
    return ConfigError([Problem(f"source.{key}", f"cannot open the source: {err}; nothing was changed")])


Undo = Callable[[], None]


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
    backends: Backends
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
    pending: PendingStore
    cache: ResultCache
    direct: DirectRunner
    recipes: RecipeStore
    switch: JobSwitch
    counters: Counters
    archive: Archive | None = None
    dataset: Dataset | None = None
    feeder: Feeder | None = None
    outputs: list[Output] = field(default_factory=list)
    link: SerialLink | None = None
    sink: SerialSink | None = None
    recorder: Recorder | None = None
    watchdog: Watchdog = field(init=False)
    shadow: ShadowRunner = field(init=False)
    started: float = field(default_factory=time.time)
    ready: bool = False
    restart_requested: bool = False  # `appliance serve` re-executes itself after the server stops
    request_stop: Callable[[], None] | None = None  # set by whoever runs the HTTP server

    def __post_init__(self) -> None:
        self._change_lock = threading.Lock()
        self.watchdog = Watchdog(self.health)
        folder, depths = self.config.data_dir / "shadow", self.pipeline.queue_depths
        self.shadow = ShadowRunner(self.manager, folder, lambda: self.config.model, depths)

    @classmethod
    def build(cls, config: Config, path: Path | None = None, backends: Backends | None = None) -> Services:
        backends = backends or Backends.from_config(config.backend)
        data = config.data_dir
        registry = open_registry(data, backends)
        manager = ModelManager(registry, runtime_options(config), FrameTap(), backends)
        bus = ResultBus()
        writer = ResultWriter(data, writer_options(config)) if config.store.enabled else None
        link = SerialLink(config.serial) if config.serial.port else None
        db = writer.path if writer else data / DB_NAME
        sequence = Sequence.for_data_dir(data, db)
        source = create_source(config.source, link)
        pipeline = Pipeline(manager, bus, pipeline_options(config), source, sequence)
        reader = ResultReader(db)
        limiter = RateLimiter(config.auth.rate_per_s, config.auth.burst)
        parts = build_parts(config, registry, manager.activate, backends.opener(config.backend.order))
        pipeline.judge = parts.switch
        return cls(
            config=config,
            backends=backends,
            registry=registry,
            manager=manager,
            bus=bus,
            pipeline=pipeline,
            writer=writer,
            reader=reader,
            auth=AuthStore(data),
            limiter=limiter,
            settings=ConfigFile(config, path, lambda c: model_problems(registry, c)),
            inspector=Inspector(bus, config.inspection, parts.counters, parts.switch),
            pending=PendingStore(config.server.job_ttl_s, config.server.max_jobs),
            cache=ResultCache(config.server.cache_entries),
            direct=DirectRunner(registry, config.backend.threads, backends),
            recipes=parts.recipes,
            switch=parts.switch,
            counters=parts.counters,
            archive=parts.archive,
            dataset=parts.dataset,
            link=link,
        )

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()
            self.recorder = Recorder(self.writer, self.config.store.snapshots)
            self.bus.subscribe("store", self.recorder)
        self._initial_model()
        self.switch.restore()  # the job active before a restart, proven again
        if self.archive is not None or self.dataset is not None:
            queued = self.config.archive.queue_size
            self.feeder = Feeder(self.archive, self.dataset, self.switch.active, queued, self.fed)
            self.bus.subscribe("inspection", self.feeder)
        self.manager.start_watching()
        self.pipeline.add_observer(self.shadow.observe)
        self.shadow.start_watching()
        self.pipeline.start()  # a source that cannot open: logged, shown, the appliance runs on
        self.outputs = start_outputs(self.plc_links())
        if self.link is not None:
            self.link.start()
            self.sink = SerialSink(self.link, self.inspector, self.trigger)
            self.sink.start()
            self.bus.subscribe("serial", self.sink)
        self.ready = True
        self.watchdog.start()
        logger.info("appliance ready in %.2f s", time.time() - self.started)

    def fed(self, result: Result) -> bool:
        """Whether a judged result goes to the archive and dataset: a triggered part, or any frame
        with archive.continuous (a continuous source would otherwise archive every frame)."""
        return self.config.archive.continuous or not self.pipeline.capturing or result.source == "trigger"

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
                backend_problems=tuple(self.backends.problems()),
            )
        )

    def healthy(self) -> bool:
        return self.health().ok

    def trigger(self) -> TriggerOutcome:
        """One inspection of the next frame (PLC, serial photo-eye)."""
        return self.inspector.trigger(self.pipeline)

    def plc_links(self) -> Links:
        """The narrow view the PLC outputs get of the appliance."""
        runtime = self.manager.current
        return Links(
            bus=self.bus,
            trigger=self.trigger,
            activate=self.manager.activate,
            active_model=lambda: rt.manifest.name if (rt := runtime()) is not None else None,
            judge=self.inspector.judge,
            plc=self.config.plc,
            source_name=self.config.source.name,
            data_dir=self.config.data_dir,
            jobs=JobActions(
                change=self.switch.activate,
                active=self.switch.number,
                counters=self.counters.read,
                reset=self.counters.reset,
                missed=self.inspector.missed,
            ),
        )

    def _initial_model(self) -> None:
        try:
            if self.registry.active() is None and self.config.model.name:
                try:
                    self.manager.activate(self.config.model.name)
                except ApplianceError as err:
                    logger.error("cannot activate model %r from config: %s", self.config.model.name, err)
            if self.manager.current() is None:
                self.manager.start()
        except ApplianceError as err:  # e.g. a damaged registry state file: serve on, say why
            self.manager.last_error = str(err)
            logger.error("no model started: %s", err)
        if self.manager.current() is None:
            logger.warning("no active model: results start once a model is added and activated")

    @property
    def config_path(self) -> Path | None:
        return self.settings.path

    def activate(self, name: str, version: int | None = None) -> Manifest:
        """Switch the model (ModelControl): proven on the source's latest frame first."""
        return self.manager.activate(name, version)

    def rollback(self) -> Manifest:
        return self.manager.rollback()

    def change(self, updates: object) -> Change:
        """Propose and apply one config change; changes are serialised, each sees the one before."""
        with self._change_lock:
            change = self.settings.propose(updates)
            if change.changed:
                self.apply(change)
            return change

    def apply(self, change: Change) -> None:
        """Apply a validated change while running, then write the file: all of it or nothing.

        Each step returns how to undo it; if a step or the file write fails, the steps done so far are
        undone in reverse and the error (naming the key) says nothing was changed.
        """
        old, new = self.config, change.config
        done: list[Undo] = []
        try:
            for step in (self._apply_simple, self._apply_source, self._apply_model, self._apply_plc):
                done.append(step(old, new))
            self.settings.commit(change)
        except Exception as err:
            for undo in reversed(done):
                try:
                    undo()
                except Exception:
                    logger.exception("undoing a failed config change failed")
            logger.warning("config change not applied, rolled back: %s", err)
            if isinstance(err, ApplianceError | ConfigError):
                raise
            what = "cannot write the config file" if isinstance(err, OSError) else "applying failed"
            raise ApplianceError(f"{what}: {err}; nothing was changed") from err
        self.config = new
        logger.info("config changed: %s", ", ".join(change.changed) or "nothing")

    def _apply_simple(self, old: Config, new: Config) -> Undo:
        """Settings that are plain values on long-lived objects: they cannot fail."""

        def put(config: Config) -> None:
            logging.getLogger().setLevel(config.log.level)
            self.inspector.rule = config.inspection
            self.limiter.rate, self.limiter.burst = config.auth.rate_per_s, float(config.auth.burst)
            self.pipeline.set_snapshot_every(pipeline_options(config).snapshot_every)
            if self.writer is not None:
                self.writer.set_retention(writer_options(config).retention)
            if self.recorder is not None:
                self.recorder.snapshots = config.store.snapshots
            if self.archive is not None:
                self.archive.quota_bytes = config.archive.quota_bytes
            if self.dataset is not None:
                self.dataset.policy = hard_example_policy(config.dataset)
            self.config = config  # handlers reading services.config see the new values

        put(new)
        return lambda: put(old)

    def _set_source(self, config: Config) -> None:
        source = create_source(config.source, self.link)
        try:
            self.pipeline.set_source(source, config.source.mode == "triggered")
        except SourceError as err:
            raise source_problem(config, err) from err

    def _apply_source(self, old: Config, new: Config) -> Undo:
        if old.source == new.source:
            return lambda: None
        self._set_source(new)
        return lambda: self._set_source(old)

    def _apply_model(self, old: Config, new: Config) -> Undo:
        """A changed model.name activates that model now (proven on the source first)."""
        if old.model.name == new.model.name or not new.model.name:
            return lambda: None
        before: Manifest | None = self.registry.active()
        try:
            self.manager.activate(new.model.name)
        except ApplianceError as err:
            raise ConfigError([Problem("model.name", f"{err}; nothing was changed")]) from err
        if before is None:
            return lambda: None
        back = before

        def undo() -> None:
            self.manager.activate(back.name, back.version)

        return undo

    def _apply_plc(self, old: Config, new: Config) -> Undo:
        if old.plc == new.plc and old.source.name == new.source.name:
            return lambda: None
        previous = self.outputs
        stop_outputs(previous)
        self.outputs = []
        links = self.plc_links()  # self.config is already `new` (see _apply_simple)
        try:
            self.outputs = start_outputs(links, new.plc)
        except (ApplianceError, ConfigError):
            self.outputs = start_outputs(dataclasses.replace(links, plc=old.plc, source_name=old.source.name))
            raise

        def undo() -> None:
            stop_outputs(self.outputs)
            self.outputs = start_outputs(dataclasses.replace(links, plc=old.plc, source_name=old.source.name))

        return undo

    def stop(self) -> None:
        self.ready = False
        self.watchdog.stop(restarting=self.restart_requested)
        stop_outputs(self.outputs)  # first: a trigger already running can still finish
        self.outputs = []
        if self.sink is not None:
            self.sink.stop()
        self.pipeline.stop()
        self.shadow.close()
        if self.link is not None:
            self.link.stop()
        self.pending.close()
        if self.feeder is not None:
            self.bus.unsubscribe("inspection")
            self.feeder.close()
        if self.archive is not None:
            self.archive.close()
        self.switch.close()
        self.counters.close()
        self.manager.close()
        if self.writer is not None:
            self.writer.close()
