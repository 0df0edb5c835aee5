"""The inspection parts of a running appliance, built from its config: job store, job switch,
counters, image archive (with its FTP push) and hard-example dataset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.backends.registry import Opener
from appliance.config import Config, ConfigError, Problem
from appliance.config.sections import ArchiveConfig, DatasetConfig
from appliance.inspection.activation import JobSwitch
from appliance.inspection.archive import Archive, FtpTarget
from appliance.inspection.counters import COUNTERS_FILE, Counters
from appliance.inspection.dataset import Dataset, HardExamplePolicy
from appliance.inspection.store import JobStore, jobs_dir
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry


def ftp_target(config: ArchiveConfig) -> FtpTarget | None:
    """The FTP push of archived images, or None; an unreadable password file is a config problem."""
    if not config.ftp_host:
        return None
    password = ""
    if config.ftp_password_file:
        try:
            password = Path(config.ftp_password_file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError([Problem("archive.ftp_password_file", f"cannot read it: {err}")]) from err
    return FtpTarget(
        config.ftp_host,
        config.ftp_port,
        config.ftp_user,
        password,
        config.ftp_dir,
        retry_s=config.ftp_retry_s,
    )


def hard_example_policy(config: DatasetConfig) -> HardExamplePolicy:
    band = (config.band_low, config.band_high) if config.band_high > config.band_low else None
    return HardExamplePolicy(band, config.keep_ng, config.max_examples)


@dataclass(frozen=True)
class InspectionParts:
    recipes: JobStore
    switch: JobSwitch
    counters: Counters
    archive: Archive | None
    dataset: Dataset | None


def build_parts(
    config: Config, registry: Registry, activate_model: Callable[[str, int], Manifest], opener: Opener
) -> InspectionParts:
    data = config.data_dir
    recipes = JobStore(jobs_dir(data))
    archive = None
    if config.archive.enabled:
        archive = Archive(data / "archive", config.archive.quota_bytes, ftp_target(config.archive))
    dataset = (
        Dataset(data / "dataset", hard_example_policy(config.dataset)) if config.dataset.enabled else None
    )
    return InspectionParts(
        recipes,
        JobSwitch(recipes, registry, activate_model, opener),
        Counters(data / COUNTERS_FILE),
        archive,
        dataset,
    )
