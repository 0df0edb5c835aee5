"""What request handlers may do to the running appliance: narrow views, not the whole container.

`Services` implements these structurally; create_app puts it on app.state once per view, typed as
that view (appliance/api/context.py), and a handler takes the view it needs, so it can reach nothing
else (mypy checks it). Lower layers (pipeline, plc, store) never import this.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from appliance.auth.ratelimit import RateLimiter
from appliance.auth.store import AuthStore
from appliance.backends.registry import Backends
from appliance.config import Config
from appliance.config.file import Change
from appliance.health import Health
from appliance.inspection.activation import JobSwitch
from appliance.inspection.archive import Archive
from appliance.inspection.counters import Counters
from appliance.inspection.dataset import Dataset
from appliance.inspection.feeder import Feeder
from appliance.inspection.store import JobStore
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry
from appliance.pipeline.cache import ResultCache
from appliance.pipeline.direct import DirectRunner
from appliance.pipeline.inspection import Inspector
from appliance.pipeline.pending import PendingStore
from appliance.pipeline.pipeline import Pipeline
from appliance.pipeline.results import ResultBus
from appliance.pipeline.runtime import ModelManager
from appliance.plc.outputs import Output
from appliance.plc.serial import SerialSink
from appliance.shadow.runner import ShadowRunner
from appliance.sources.serial import SerialLink
from appliance.store.reader import ResultReader
from appliance.store.writer import ResultWriter


class ConfigView(Protocol):
    """Read the running configuration (auth settings, data directory, ...)."""

    @property
    def config(self) -> Config: ...


class ConfigControl(ConfigView, Protocol):
    """Read the configuration; change it as one transaction (propose, apply, write, or nothing)."""

    @property
    def config_path(self) -> Path | None: ...
    def change(self, updates: object) -> Change: ...


class ModelControl(Protocol):
    """Switch the running model: proven on the source first, refused with the reason otherwise."""

    def activate(self, name: str, version: int | None = None) -> Manifest: ...
    def rollback(self) -> Manifest: ...


class RestartControl(Protocol):
    """Ask the server to stop after answering, so that `appliance serve` starts it again."""

    restart_requested: bool

    @property
    def request_stop(self) -> Callable[[], None] | None: ...


class StatusView(Protocol):
    """What health and status report: read only."""

    @property
    def manager(self) -> ModelManager: ...
    @property
    def pipeline(self) -> Pipeline: ...
    @property
    def writer(self) -> ResultWriter | None: ...
    @property
    def link(self) -> SerialLink | None: ...
    @property
    def sink(self) -> SerialSink | None: ...
    @property
    def outputs(self) -> list[Output]: ...
    @property
    def ready(self) -> bool: ...
    @property
    def started(self) -> float: ...
    def health(self) -> Health: ...


class PanelView(StatusView, ConfigView, Protocol):
    """The dashboard and the diagnostics bundle: the status, the configuration, the stored results."""

    @property
    def reader(self) -> ResultReader: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def switch(self) -> JobSwitch: ...
    @property
    def counters(self) -> Counters: ...


class ResultsView(ConfigView, Protocol):
    """Stored results and their snapshots (under config.data_dir); the models, for the filter."""

    @property
    def reader(self) -> ResultReader: ...
    @property
    def writer(self) -> ResultWriter | None: ...
    @property
    def registry(self) -> Registry: ...


class LiveView(Protocol):
    """The live page: the frames the pipeline publishes and what the model is doing."""

    @property
    def pipeline(self) -> Pipeline: ...
    @property
    def bus(self) -> ResultBus: ...
    @property
    def manager(self) -> ModelManager: ...


class InferenceView(ConfigView, Protocol):
    """/api/v1/infer and /api/v1/frames: frames into the pipeline, answers from the result cache."""

    @property
    def manager(self) -> ModelManager: ...
    @property
    def pipeline(self) -> Pipeline: ...
    @property
    def cache(self) -> ResultCache: ...


class TriggerView(ConfigView, Protocol):
    """The PLC trigger over REST: one inspection now, or as an asynchronous job."""

    @property
    def inspector(self) -> Inspector: ...
    @property
    def pipeline(self) -> Pipeline: ...
    @property
    def pending(self) -> PendingStore: ...


class ServingView(ConfigView, Protocol):
    """KServe v2 (REST): any registry model run directly, and readiness."""

    @property
    def registry(self) -> Registry: ...
    @property
    def direct(self) -> DirectRunner: ...
    def health(self) -> Health: ...


class GrpcView(ServingView, Protocol):
    """KServe v2 over gRPC: as REST, checking tokens and rates itself (no HTTP middleware there)."""

    @property
    def auth(self) -> AuthStore: ...
    @property
    def limiter(self) -> RateLimiter: ...


class ModelsView(ModelControl, ConfigView, Protocol):
    """The model registry: upload, test, activate, roll back, delete; shadow runs and promotion."""

    @property
    def registry(self) -> Registry: ...
    @property
    def manager(self) -> ModelManager: ...
    @property
    def backends(self) -> Backends: ...
    @property
    def shadow(self) -> ShadowRunner: ...


class JobsView(ConfigView, Protocol):
    """Inspection jobs: recipes, the proven switch, counters, the dataset and stored results to flag."""

    @property
    def recipes(self) -> JobStore: ...
    @property
    def switch(self) -> JobSwitch: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def dataset(self) -> Dataset | None: ...
    @property
    def reader(self) -> ResultReader: ...


class InspectionView(JobsView, Protocol):
    """The Inspection page: jobs, plus the newest frame and verdict, the model and the archive."""

    @property
    def pipeline(self) -> Pipeline: ...
    @property
    def bus(self) -> ResultBus: ...
    @property
    def manager(self) -> ModelManager: ...
    @property
    def archive(self) -> Archive | None: ...
    @property
    def feeder(self) -> Feeder | None: ...


class MetricsView(StatusView, Protocol):
    """/metrics: the status, plus the cache, the triggers, the counters and the archive feeder."""

    @property
    def cache(self) -> ResultCache: ...
    @property
    def inspector(self) -> Inspector: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def switch(self) -> JobSwitch: ...
    @property
    def feeder(self) -> Feeder | None: ...
