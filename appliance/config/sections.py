"""The configuration schema: one frozen dataclass per TOML section, a default and a description per key.

docs/config.md repeats every description (a test checks it); appliance.config reads and validates files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def setting(default: Any, doc: str, **rules: Any) -> Any:
    """A config field: its default, a one-line description and optional rules (choices, min, max;
    for a list: each = the choices of every item, min_items)."""
    return field(default=default, metadata={"doc": doc, **rules})


SOURCE_KINDS = ("none", "video", "folder", "camera", "stream", "push", "serial")
SNAPSHOT_MODES = ("off", "all", "detections")
SOURCE_MODES = ("continuous", "triggered")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CORE_POLICIES = ("auto", "per-core", "core0", "core1", "core2", "core0_1", "core0_1_2")
DELEGATES = ("none", "teflon")
BACKEND_NAMES = ("litert", "rknn")  # appliance.backends.registry.Backends holds exactly these


@dataclass(frozen=True)
class ServerConfig:
    host: str = setting("127.0.0.1", "Address the HTTP server listens on (0.0.0.0 for every interface).")
    port: int = setting(8080, "TCP port of the HTTP server (UI, REST).", min=1, max=65535)
    max_upload_bytes: int = setting(
        16 * 1024 * 1024, "Largest accepted request body in bytes; larger ones get 413.", min=1024
    )
    max_model_bytes: int = setting(
        512 * 1024 * 1024,
        "Largest model file accepted (upload, `models add`); streamed to disk, never held in memory.",
        min=1024,
    )
    infer_timeout_s: float = setting(10.0, "How long an inference request waits for its result.", min=0.1)
    secure_cookies: bool = setting(
        False, "Mark the login cookie Secure: set it when the UI is reached over HTTPS (TLS proxy)."
    )
    job_ttl_s: float = setting(300.0, "How long a finished async job's result is kept.", min=1.0)
    max_jobs: int = setting(1000, "Most async jobs kept at once; more are refused with 503.", min=1)
    cache_entries: int = setting(
        256, "Results kept for repeated identical inputs; 0 turns the cache off.", min=0
    )
    max_inflight: int = setting(
        64, "KServe v2 inferences (REST and gRPC) running or waiting at once; more get 503 Busy.", min=1
    )


@dataclass(frozen=True)
class DataConfig:
    dir: str = setting("./data", "Data directory: results.db, snapshots/ and the model registry models/.")


@dataclass(frozen=True)
class SourceConfig:
    kind: str = setting("none", "Input source: " + ", ".join(SOURCE_KINDS) + ".", choices=SOURCE_KINDS)
    name: str = setting("main", "Source name recorded with every result.")
    mode: str = setting(
        "continuous",
        "continuous: run every frame; triggered: run only on a trigger (REST, PLC, serial).",
        choices=SOURCE_MODES,
    )
    path: str = setting("", "Video file (kind=video) or image folder (kind=folder).")
    url: str = setting("", "RTSP/HTTP stream URL (kind=stream).")
    device: str = setting("0", "Camera index or /dev/videoN path (kind=camera).")
    loop: bool = setting(True, "Start over at the end of a video file or image folder.")
    rate: float = setting(
        0.0, "Frames per second to read files at; 0 reads as fast as the pipeline takes them.", min=0.0
    )
    width: int = setting(0, "Requested camera frame width; 0 keeps the camera's default.", min=0)
    height: int = setting(0, "Requested camera frame height; 0 keeps the camera's default.", min=0)
    reconnect_min_s: float = setting(0.5, "First wait before reconnecting a lost live source.", min=0.01)
    reconnect_max_s: float = setting(30.0, "Longest wait between reconnect attempts (backoff cap).", min=0.01)
    stall_s: float = setting(
        2.0,
        "A live source with no frame for this long reports stalled and is reopened (raise for slow cameras).",
        min=0.1,
        max=3600.0,
    )


@dataclass(frozen=True)
class ModelConfig:
    name: str = setting(
        "", "Model to activate at startup if the registry has none, and at once when changed; must exist."
    )
    shadow_every: int = setting(
        0,
        "A shadow run compares every Nth result's frame; 0: whenever the pipeline's queues are empty.",
        min=0,
    )
    shadow_min_agreement: float = setting(
        0.98,
        "A shadowed candidate is promoted only at this agreement with the active model (or an override).",
        min=0.0,
        max=1.0,
    )
    shadow_min_frames: int = setting(
        200, "Fewest frames a shadow run must compare before its candidate may be promoted.", min=1
    )
    shadow_examples: int = setting(
        12, "Disagreeing frames a shadow run keeps as thumbnails; 0 keeps none.", min=0, max=200
    )


@dataclass(frozen=True)
class BackendConfig:
    order: tuple[str, ...] = setting(
        ("litert",),
        "Backends to try, most preferred first (litert, rknn).",
        each=BACKEND_NAMES,
        min_items=1,
    )
    threads: int = setting(2, "CPU threads per LiteRT interpreter (num_threads).", min=1, max=64)
    workers: int = setting(1, "Inference contexts run in parallel, one thread each.", min=1, max=16)
    core_policy: str = setting(
        "auto",
        "NPU cores for rknn: auto, per-core (one context per core), or a fixed mask core0 ... core0_1_2.",
        choices=CORE_POLICIES,
    )
    delegate: str = setting(
        "none",
        "LiteRT external delegate: none, or teflon (Mesa libteflon.so for the mainline rocket driver).",
        choices=DELEGATES,
    )
    retry_s: float = setting(
        5.0, "First wait before a failed NPU context is retried; doubles each time.", min=0.1
    )
    retry_max_s: float = setting(300.0, "Longest wait between retries of a failed NPU context.", min=0.1)
    deadline_s: float = setting(
        0.0,
        "Longest wait for one NPU inference before its context is marked hung and the frame runs on "
        "another context or the CPU; 0 = auto (deadline_factor x the median measured latency, at least "
        "deadline_min_s).",
        min=0.0,
    )
    deadline_factor: float = setting(
        5.0, "With deadline_s = 0: the deadline is this many times the median measured latency.", min=1.0
    )
    deadline_min_s: float = setting(
        0.5, "With deadline_s = 0: the deadline is never shorter than this.", min=0.01
    )
    rknn_venv: str = setting(".venv-rknn", "Virtualenv with rknn-toolkit2 for `appliance models convert`.")
    verify_min_cosine: float = setting(
        0.98,
        "A converted model fails when an output's cosine similarity to LiteRT is lower.",
        min=0.0,
        max=1.0,
    )
    verify_min_same_label: float = setting(
        0.9, "A converted classifier fails when fewer samples keep LiteRT's top-1 class.", min=0.0, max=1.0
    )
    verify_min_boxes: float = setting(
        0.9,
        "A converted detector fails when its box recall against LiteRT (share of LiteRT boxes matched at "
        "IoU >= 0.5) is lower.",
        min=0.0,
        max=1.0,
    )
    verify_min_precision: float = setting(
        0.9,
        "A converted detector fails when its box precision (share of its boxes matched by a LiteRT box) "
        "is lower.",
        min=0.0,
        max=1.0,
    )
    verify_max_error: float = setting(
        0.05,
        "A converted model fails when the mean absolute error of an output exceeds this share of "
        "LiteRT's output range.",
        min=0.0,
        max=1.0,
    )


@dataclass(frozen=True)
class PipelineConfig:
    queue_size: int = setting(4, "Capacity of each queue between pipeline stages.", min=1, max=1024)
    snapshot_every: int = setting(0, "Keep the frame of every Nth result for snapshots; 0 never.", min=0)


@dataclass(frozen=True)
class StoreConfig:
    enabled: bool = setting(True, "Log every pipeline result to SQLite.")
    queue_size: int = setting(10_000, "Results waiting for the writer before the pipeline waits.", min=1)
    batch_size: int = setting(500, "Most results written in one transaction.", min=1)
    flush_interval_ms: int = setting(200, "Longest time a result waits before its batch is committed.", min=1)
    snapshots: str = setting(
        "off",
        "Save a JPEG of the frame: off, all, or detections (results with count > 0).",
        choices=SNAPSHOT_MODES,
    )
    snapshot_quality: int = setting(80, "JPEG quality of snapshots.", min=10, max=100)
    max_age_days: float = setting(30.0, "Delete results older than this; 0 keeps them forever.", min=0.0)
    max_rows: int = setting(1_000_000, "Keep at most this many results; 0 means no limit.", min=0)
    max_bytes: int = setting(
        2 * 1024**3, "Cap on database plus snapshot bytes; oldest results go first; 0 no limit.", min=0
    )
    retention_interval_s: float = setting(
        60.0, "How often retention runs (it also runs as soon as max_bytes is exceeded).", min=0.1
    )
    min_free_bytes: int = setting(
        256 * 1024**2,
        "Free-space reserve on the data disk, checked every batch: under it the oldest snapshots, "
        "then rows, go; 0 no check.",
        min=0,
    )


SERIAL_RESULTS = ("triggers", "all", "none")
REJECT_WHEN = ("fail", "pass", "never")
BAUD_RATES = (115200, 230400, 460800, 921600)


@dataclass(frozen=True)
class SerialConfig:
    port: str = setting("", "Serial port of the microcontroller (firmware-bridge protocol); empty: no link.")
    baudrate: int = setting(115200, "UART speed: 115200, 230400, 460800 or 921600.", choices=BAUD_RATES)
    trigger: bool = setting(True, "A TRIGGER from the microcontroller (photo-eye) runs an inspection.")
    results: str = setting(
        "triggers", "Send RESULT for: triggers (answers only), all results, or none.", choices=SERIAL_RESULTS
    )
    reject_output: int = setting(-1, "Output driven with IO_SET to reject a part; -1: none.", min=-1, max=255)
    reject_when: str = setting(
        "fail", "Pulse the reject output when a result is: fail, pass or never.", choices=REJECT_WHEN
    )
    reject_pulse_ms: int = setting(300, "Length of the reject pulse in milliseconds.", min=1, max=60_000)
    io_deadline_ms: int = setting(
        250,
        "A reject IO_SET not ACKed this long after its trigger (or result) is dropped, never sent late.",
        min=10,
        max=60_000,
    )
    result_deadline_ms: int = setting(
        1000,
        "A RESULT not ACKed this long after its trigger (or result) is dropped, never sent late.",
        min=10,
        max=600_000,
    )


@dataclass(frozen=True)
class InspectionConfig:
    pass_labels: tuple[str, ...] = setting((), "Top labels that pass; empty: any label passes.")
    min_count: int = setting(0, "Fewest objects (detections) for a pass.", min=0)
    max_count: int = setting(1_000_000, "Most objects (detections) for a pass.", min=0)
    min_score: float = setting(0.0, "Lowest top score for a pass.", min=0.0, max=1.0)
    trigger_timeout_s: float = setting(5.0, "How long a trigger waits for its result.", min=0.1)


@dataclass(frozen=True)
class ArchiveConfig:
    enabled: bool = setting(
        True, "Keep inspection images (NG first) in data_dir/archive per the job's policy."
    )
    quota_bytes: int = setting(
        512 * 1024 * 1024, "Disk quota of the image archive; OK images go first, oldest first.", min=1024
    )
    queue_size: int = setting(
        64, "Results waiting for the archive and dataset writer; more are dropped and counted.", min=1
    )
    continuous: bool = setting(
        False, "Also archive (and keep hard examples of) continuous-mode frames, not only triggered parts."
    )
    ftp_host: str = setting("", "FTP server each archived image is pushed to; empty: no push.")
    ftp_port: int = setting(21, "FTP server TCP port.", min=1, max=65535)
    ftp_user: str = setting("anonymous", "FTP user name.")
    ftp_password_file: str = setting("", "File holding the FTP password; empty: no password.")
    ftp_dir: str = setting("", "Directory on the FTP server; empty: the login directory.")
    ftp_retry_s: float = setting(
        5.0, "Wait between attempts to push an image the server did not take.", min=0.1
    )


@dataclass(frozen=True)
class DatasetConfig:
    enabled: bool = setting(
        True, "Keep hard examples (NG, top score in the band, flagged) in data_dir/dataset."
    )
    band_low: float = setting(
        0.4, "Lower end of the top-score band that makes a result a hard example.", min=0.0, max=1.0
    )
    band_high: float = setting(
        0.6, "Upper end of the top-score band; equal to band_low: no band.", min=0.0, max=1.0
    )
    keep_ng: bool = setting(True, "Every NG result is a hard example.")
    max_examples: int = setting(5000, "Most examples kept; the oldest unflagged go first.", min=1)


@dataclass(frozen=True)
class PlcConfig:
    modbus_enabled: bool = setting(
        False, "Run the Modbus TCP server with the vision-sensor handshake (docs/plc.md)."
    )
    modbus_host: str = setting("0.0.0.0", "Address the Modbus TCP server listens on.")
    modbus_port: int = setting(
        5020, "Modbus TCP port; the standard 502 needs root or CAP_NET_BIND_SERVICE.", min=1, max=65535
    )
    modbus_unit_id: int = setting(0, "Modbus unit id answered; 0 answers every unit id.", min=0, max=255)
    model_slots: tuple[str, ...] = setting(
        (),
        "Models a PLC selects by number (holding register 0): slot 1 is the first name; 0 keeps the model.",
    )
    mqtt_enabled: bool = setting(False, "Publish results and status to an MQTT broker.")
    mqtt_host: str = setting("127.0.0.1", "MQTT broker host name or address.")
    mqtt_port: int = setting(1883, "MQTT broker TCP port.", min=1, max=65535)
    mqtt_username: str = setting("", "MQTT user name; empty: connect without credentials.")
    mqtt_password_file: str = setting(
        "", "File whose first line is the MQTT password (the secret stays out of this file)."
    )
    mqtt_topic_prefix: str = setting(
        "", "Topics are <prefix>/result and <prefix>/status; empty: appliance/<source.name>."
    )
    mqtt_qos: int = setting(
        1,
        "MQTT quality of service for results: 0, 1 or 2 (0 can lose a result on a dying link).",
        min=0,
        max=2,
    )
    mqtt_keepalive_s: int = setting(30, "Seconds between MQTT keep-alive pings.", min=5, max=3600)
    mqtt_reconnect_max_s: int = setting(
        5, "Longest wait between MQTT reconnect attempts (starts at 1 s, doubles).", min=1, max=3600
    )
    mqtt_queue_size: int = setting(
        1000, "Results held while the broker is away; the oldest are dropped (and counted).", min=1
    )
    webhook_urls: tuple[str, ...] = setting((), "URLs that get each result as a JSON POST.")
    webhook_timeout_s: float = setting(
        5.0, "How long a webhook receiver may take to answer; an unanswered POST is not resent.", min=0.1
    )
    webhook_secret_file: str = setting(
        "", "File whose first line is the webhook signing secret (whsec_<base64>); empty: unsigned."
    )
    webhook_backoff_max_s: float = setting(
        30.0, "Longest wait between retries while a webhook receiver is down (results queue).", min=0.01
    )
    webhook_retries: int = setting(
        3, "Retries of a webhook POST answered 5xx/408/429 before it is counted as failed.", min=0
    )
    webhook_backoff_s: float = setting(
        0.5, "Wait before the first webhook retry; doubles each retry.", min=0.0
    )
    webhook_queue_size: int = setting(
        100, "Results waiting for webhooks; when full the oldest is dropped (and counted).", min=1
    )


@dataclass(frozen=True)
class AuthConfig:
    anonymous_read: bool = setting(False, "Allow read-only API calls (status, results) without a token.")
    rate_per_s: float = setting(
        50.0, "Requests per second allowed per token or client IP; 0 = no limit.", min=0.0
    )
    burst: int = setting(100, "Requests a client may send at once before the rate limit applies.", min=1)
    session_hours: float = setting(12.0, "How long a browser login lasts.", min=0.1, max=24 * 366)


@dataclass(frozen=True)
class GrpcConfig:
    enabled: bool = setting(False, "Serve KServe v2 over gRPC (GRPCInferenceService) beside HTTP.")
    host: str = setting("127.0.0.1", "Address the gRPC server listens on (0.0.0.0 for every interface).")
    port: int = setting(8001, "TCP port of the gRPC server (Triton's default).", min=1, max=65535)
    max_message_bytes: int = setting(
        16 * 1024 * 1024, "Largest gRPC request or response message in bytes.", min=1024
    )
    threads: int = setting(4, "Threads answering gRPC calls.", min=1, max=64)


@dataclass(frozen=True)
class LogConfig:
    level: str = setting("INFO", "Log level: " + ", ".join(LOG_LEVELS) + ".", choices=LOG_LEVELS)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    inspection: InspectionConfig = field(default_factory=InspectionConfig)
    serial: SerialConfig = field(default_factory=SerialConfig)
    plc: PlcConfig = field(default_factory=PlcConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.data.dir)
