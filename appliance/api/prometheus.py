"""/metrics through prometheus_client: one registry per app, read from the live services at scrape time.

`metrics_registry()` gives the app its own CollectorRegistry (never the library's global default
registry) with the process collector (process_cpu_seconds_total, process_resident_memory_bytes, ...)
and `ApplianceCollector`, which builds every appliance_* family from the status document when
Prometheus scrapes: nothing is counted twice and no metric object outlives the services.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from appliance.inspection.counters import CounterSnapshot
from appliance.pipeline.metrics import HISTOGRAM_BOUNDS_MS, StageSnapshot

DELIVERY_OUTPUTS = ("mqtt", "webhooks")


class MetricsSource(Protocol):
    """What a scrape reads: the status document and the per-stage latency snapshots."""

    def status_document(self) -> dict[str, Any]: ...
    def stage_snapshots(self) -> list[StageSnapshot]: ...
    def cache_counts(self) -> tuple[int, int]: ...  # hits, misses
    def triggers(self) -> int: ...
    def inspection(self) -> tuple[Sequence[CounterSnapshot], int, int]: ...  # counters, job, archive drops


def counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


Rows = list[tuple[str, float]]  # (label value, sample value)


def gauges(name: str, text: str, label: str, rows: Rows) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for key, value in rows:
        family.add_metric([key], value)
    return family


def counters(name: str, text: str, label: str, rows: Rows) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=[label])
    for key, value in rows:
        family.add_metric([key], value)
    return family


class ApplianceCollector:
    """Every appliance_* family, built from the running services on each scrape."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        doc = self.source.status_document()
        src = doc["source"] or {}
        yield counter("appliance_results_total", "Results published since start.", doc["results"])
        yield counter("appliance_frames_total", "Frames read from the source.", src.get("frames", 0))
        yield counter("appliance_frames_dropped_total", "Frames the source dropped.", doc["drops"])
        connected = src.get("state") == "connected"
        yield gauge("appliance_source_connected", "1 while the source is connected.", connected)
        backend: Rows = [(doc["backend"] or "none", 1)]
        yield gauges("appliance_backend_info", "The active model's backend.", "backend", backend)
        yield from health_families(doc)
        yield from self.pipeline_families(doc)
        yield from store_families(doc["store"])
        yield from delivery_families(doc["plc"])
        hits, misses = self.source.cache_counts()
        yield counter("appliance_cache_hits_total", "Inference requests answered from the cache.", hits)
        yield counter("appliance_cache_misses_total", "Inference requests not in the cache.", misses)
        yield counter("appliance_triggers_total", "Inspection triggers received.", self.source.triggers())
        yield gauge("appliance_rss_megabytes", "Resident memory now (MiB).", doc["rss_mb"])
        yield from inspection_families(*self.source.inspection())

    def pipeline_families(self, doc: dict[str, Any]) -> Iterator[Metric]:
        queues: Rows = list(doc["pipeline"]["queues"].items())
        yield gauges("appliance_queue_depth", "Items waiting in a pipeline queue.", "queue", queues)
        snapshots = self.source.stage_snapshots()
        errors: Rows = [(s.name, s.errors) for s in snapshots]
        yield counters("appliance_stage_errors", "Errors per pipeline stage.", "stage", errors)
        latency = HistogramMetricFamily(
            "appliance_stage_latency_ms", "Latency per pipeline stage (milliseconds).", labels=["stage"]
        )
        for snap in snapshots:
            latency.add_metric([snap.name], buckets=cumulative(snap.histogram), sum_value=snap.sum_ms)
        yield latency


def cumulative(histogram: tuple[int, ...]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one above every bound) as Prometheus' cumulative le buckets."""
    bounds = [str(float(b)) for b in HISTOGRAM_BOUNDS_MS] + ["+Inf"]  # 0.5, 1.0, ... as Go prints them
    running, buckets = 0, []
    for bound, count in zip(bounds, histogram, strict=True):
        running += count
        buckets.append((bound, float(running)))
    return buckets


def health_families(doc: dict[str, Any]) -> Iterator[Metric]:
    """Health as numbers: ok or not, reasons and warnings counted, each context's state and hangs."""
    health = doc["health"]
    contexts = (doc["model"] or {}).get("context_health", [])
    yield gauge("appliance_healthy", "1 exactly when /api/v1/health says ok.", health["status"] == "ok")
    yield gauge("appliance_health_reasons", "Reasons the appliance is not healthy.", len(health["reasons"]))
    yield gauge("appliance_health_warnings", "Health warnings.", len(health.get("warnings", [])))
    ok: Rows = [(c["label"], bool(c.get("healthy"))) for c in contexts]
    yield gauges("appliance_context_healthy", "1 while an NPU context is healthy.", "context", ok)
    hangs: Rows = [(c["label"], c.get("hangs", 0)) for c in contexts]
    yield counters("appliance_context_hangs", "NPU calls past their deadline.", "context", hangs)


def store_families(store: dict[str, Any]) -> Iterator[Metric]:
    yield gauge("appliance_db_rows", "Rows in results.db.", store.get("rows", 0))
    yield gauge("appliance_db_pending", "Results waiting for the writer.", store.get("pending", 0))
    yield counter("appliance_db_errors_total", "Store write errors.", store.get("errors", 0))
    yield gauge("appliance_db_degraded", "1 while the store is degraded.", bool(store.get("degraded")))
    dropped = store.get("snapshots_dropped", 0)
    yield counter("appliance_db_snapshots_dropped_total", "Snapshots not written (disk space).", dropped)


def delivery_families(plc: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """sent / retried / dropped of the MQTT and webhook outputs that are on."""
    on = [name for name in DELIVERY_OUTPUTS if plc.get(name, {}).get("enabled")]
    for name in ("sent", "retried", "dropped"):
        rows: Rows = [(o, plc[o].get(name, 0)) for o in on]
        yield counters(f"appliance_delivery_{name}", f"Results {name} per output.", "output", rows)


INSPECTION_COUNTERS = ("triggers", "ok", "ng", "errors", "missed")


def inspection_families(
    snapshots: Sequence[CounterSnapshot], active_job: int, archive_dropped: int
) -> Iterator[Metric]:
    """Production counters of inspection jobs (job="0" is the total), the active job, archive drops."""
    for name in INSPECTION_COUNTERS:
        rows: Rows = [(str(s.job), getattr(s, name)) for s in snapshots]
        yield counters(f"appliance_inspection_{name}", f"Inspection {name} per job (0: all).", "job", rows)
    yields: Rows = [(str(s.job), round(s.yield_pct, 3)) for s in snapshots if s.yield_pct is not None]
    yield gauges("appliance_inspection_yield_percent", "OK share of judged parts per job.", "job", yields)
    yield gauge("appliance_inspection_active_job", "The active inspection job's number.", active_job)
    yield counter("appliance_archive_dropped_total", "Parts not archived (queue full).", archive_dropped)


def metrics_registry(source: MetricsSource) -> CollectorRegistry:
    """A registry of the app's own (no global state): the process collector and the appliance's."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    registry.register(ApplianceCollector(source))
    return registry
