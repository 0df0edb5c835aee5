"""Subscriber that turns pipeline results into rows for the result store."""

from __future__ import annotations

import json

from appliance.pipeline.results import Result
from appliance.store.rows import Record
from appliance.store.writer import ResultWriter

COMPACT = (",", ":")


def to_record(result: Result, with_image: bool) -> Record:
    t = result.timings
    detections = json.dumps([d.to_json() for d in result.detections], separators=COMPACT)
    extra = json.dumps(result.extra, separators=COMPACT) if result.extra else None
    values = (
        result.ts,
        result.seq,
        result.frame_id,
        result.source,
        result.model,
        result.model_version,
        result.task,
        result.backend,
        result.label,
        result.label_id,
        result.score,
        result.count,
        detections,
        extra,
        t.pre_ms,
        t.infer_ms,
        t.post_ms,
        t.total_ms,
        json.dumps(result.verdict, separators=COMPACT) if result.verdict is not None else None,
    )
    return Record(values, result.image if with_image else None)


class Recorder:
    """Stores results that ask to be stored; snapshots per mode: off, all, detections."""

    def __init__(self, writer: ResultWriter, snapshots: str) -> None:
        self.writer = writer
        self.snapshots = snapshots

    def __call__(self, result: Result) -> None:
        if not result.store:
            return
        wanted = self.snapshots == "all" or (self.snapshots == "detections" and result.count > 0)
        self.writer.submit(to_record(result, wanted and result.image is not None))
