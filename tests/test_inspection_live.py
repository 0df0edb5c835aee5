"""Inspection jobs in a running appliance: detect -> classify in the pipeline, and the counters and
the active job surviving a real process restart (`appliance serve` re-executed by /api/v1/restart)."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np

from appliance.inspection.recipe import parse_job
from appliance.services import Services, open_registry
from appliance_tools.demo.setup import prepare_demo_job
from tests.conftest import config_for, free_port, wait_for
from tests.test_inspection_archive import LocalFtp
from tests.test_inspection_chain import striped
from tests.test_inspection_rules import frame, job_spec
from tests.test_restart import START_TIMEOUT_S, serve, write_config


def chain_job() -> dict[str, object]:
    half = [[0, 0], [240, 240]], [[240, 0], [480, 240]]
    return {
        "number": 12,
        "name": "stripes per face",
        "model": {"name": "face", "version": 1},
        "second_stage": {"name": "stripes", "version": 1},
        "regions": [
            {"id": 1, "name": "left", "shape": "rect", "points": half[0], "required": ["horizontal_stripes"]},
            {
                "id": 2,
                "name": "right",
                "shape": "rect",
                "points": half[1],
                "required": ["horizontal_stripes"],
            },
        ],
    }


def test_detect_then_classify_runs_in_the_pipeline_and_judges_the_classifier_labels(
    data_dir: Path, astronaut: np.ndarray
) -> None:
    services = Services.build(config_for(data_dir))
    services.start()
    try:
        services.recipes.save(parse_job(chain_job()))
        services.switch.activate(12)
        crop = np.ascontiguousarray(astronaut[20:260, 110:350])
        image = np.concatenate([striped(crop, "h"), striped(crop, "v")], axis=1)
        first = services.inspector.trigger(services.pipeline, image)
        again = services.inspector.trigger(services.pipeline, image)
    finally:
        services.stop()
    result = first.result
    labels = {("left" if d.box[0] < 240 else "right"): d.label for d in result.detections}
    assert labels == {"left": "horizontal_stripes", "right": "vertical_stripes"}
    assert result.extra["second_stage"]["model"] == "stripes"
    assert [d["label"] for d in result.extra["second_stage"]["detector"]] == ["face", "face"]
    assert not first.ok and result.verdict is not None
    assert result.verdict["pass_bits"] == 0b01
    assert result.verdict["reasons"] == ["region 2: missing label horizontal_stripes"]
    assert again.result.verdict == result.verdict  # the same models, loaded once, judge alike


def test_counters_and_the_active_job_survive_a_process_restart(
    tmp_path: Path, data_dir: Path, astronaut: np.ndarray
) -> None:
    crop = np.ascontiguousarray(astronaut[20:260, 110:350])
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "part.png"), frame(crop, 0, 3))  # NG: a face in region 2
    source = f'[source]\nkind = "folder"\npath = "{folder}"\nmode = "triggered"\n'
    with serve(tmp_path, write_config(tmp_path, data_dir, source)) as served:
        wait_for(lambda: served.healthy_pid() is not None, START_TIMEOUT_S)
        api = httpx.Client(
            base_url=served.url, headers={"authorization": f"Bearer {served.token}"}, timeout=60
        )
        assert api.put("/api/v1/inspection/jobs/7", json=job_spec()).status_code == 201
        assert api.post("/api/v1/inspection/jobs/7/activate").status_code == 200
        for _ in range(2):
            answer = api.post("/api/v1/trigger").json()
            assert answer["ok"] is False and answer["reason_code"] == 2
        before = api.get("/api/v1/inspection/counters").json()
        pid = served.healthy_pid()
        assert api.post("/api/v1/restart").status_code == 202
        wait_for(lambda: served.healthy_pid() not in (None, pid), START_TIMEOUT_S)
        after = api.get("/api/v1/inspection/counters").json()
        assert after == before and after["total"]["ng"] == 2 and after["active_job"] == 7
        assert api.post("/api/v1/trigger").json()["job"] == 7  # judged by the restored job
        assert api.get("/api/v1/inspection/counters").json()["total"]["ng"] == 3  # counted on from 2


def test_the_demo_job_is_active_after_demo_prepare_and_judges_ok_and_ng(
    data_dir: Path, astronaut: np.ndarray
) -> None:
    prepare_demo_job(data_dir, open_registry(data_dir))
    services = Services.build(config_for(data_dir))
    services.start()
    try:
        assert services.switch.number() == 1  # restored from data_dir/jobs/active.json
        part = np.full((480, 640, 3), 128, np.uint8)
        part[:, :512] = astronaut[:480]  # her face is in the left half
        ok = services.inspector.trigger(services.pipeline, part)
        empty = services.inspector.trigger(services.pipeline, np.full((480, 640, 3), 128, np.uint8))
    finally:
        services.stop()
    assert ok.ok and ok.result.verdict is not None and ok.result.verdict["pass_bits"] == 0b11
    assert not empty.ok and empty.result.verdict is not None
    assert empty.result.verdict["reasons"] == ["region 1: missing label face", "region 2: missing label face"]


def test_an_ng_part_is_archived_and_pushed_to_the_configured_ftp_server(
    data_dir: Path, tmp_path: Path, astronaut: np.ndarray
) -> None:
    root = tmp_path / "ftp"
    root.mkdir()
    ftp = LocalFtp(free_port(), root)
    ftp.start()
    secret = tmp_path / "ftp-password"
    secret.write_text("secret-pw\n")
    extra = (
        f'[archive]\nftp_host = "127.0.0.1"\nftp_port = {ftp.port}\nftp_user = "line3"\n'
        f'ftp_password_file = "{secret}"\nftp_retry_s = 0.2\n'
    )
    services = Services.build(config_for(data_dir, extra))
    services.start()
    try:
        services.recipes.save(parse_job(job_spec()))
        services.switch.activate(7)
        crop = np.ascontiguousarray(astronaut[20:260, 110:350])
        outcome = services.inspector.trigger(services.pipeline, frame(crop, 0, 3))
        assert not outcome.ok
        pusher = services.archive.pusher if services.archive is not None else None
        assert pusher is not None
        wait_for(lambda: pusher.pushed == 1)  # stored as name.part, then renamed
        [name] = ftp.files()
        assert "_job007_NG_" in name and name.endswith(".jpg")
        assert (root / name).read_bytes() == (services.config.data_dir / "archive" / name).read_bytes()
        wait_for(lambda: pusher.pending() == 0)  # taken off the queue right after the rename
    finally:
        services.stop()
        ftp.stop()
