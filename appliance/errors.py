"""Domain exceptions. Each carries the HTTP status the API answers with."""

from __future__ import annotations


class ApplianceError(Exception):
    """Base of every error the appliance reports to a user."""

    status = 500


class BadRequest(ApplianceError):
    status = 400


class NotFound(ApplianceError):
    status = 404


class Conflict(ApplianceError):
    status = 409


class PayloadTooLarge(ApplianceError):
    status = 413


class UnsupportedMediaType(ApplianceError):
    status = 415


class Busy(ApplianceError):
    """The pipeline cannot take more work right now (queue full or timeout)."""

    status = 503


class NoActiveModel(Busy):
    """No model is active yet: nothing can run."""


class TriggerTimeout(Busy):
    """A trigger that got no result within inspection.trigger_timeout_s."""


class ModelRejected(BadRequest):
    """A model file or manifest that cannot be used for the requested task."""


class ImageRejected(BadRequest):
    """An upload that is not a decodable JPEG or PNG image."""


class SourceError(ApplianceError):
    """A source that cannot be opened or read."""

    status = 503


class BackendUnavailable(ApplianceError):
    """A backend that cannot run on this machine (library, driver or device missing)."""

    status = 503


class NoSource(Conflict):
    """A trigger without an image on an appliance that has no source configured."""


class InferenceFailed(ApplianceError):
    """A backend that failed while running a model."""

    status = 500


# Numeric codes for PLCs (REST trigger answers, Modbus input register 7). Stable: documented in docs/plc.md.
ERROR_TIMEOUT = 5
ERROR_INTERNAL = 9
ERROR_CODES: dict[type[ApplianceError], int] = {
    TriggerTimeout: ERROR_TIMEOUT,
    NoActiveModel: 3,
    Busy: 1,
    SourceError: 2,
    NoSource: 2,
    ModelRejected: 4,
    BackendUnavailable: 4,
}


def error_code(err: BaseException) -> int:
    """The PLC error code of an exception (most specific class first)."""
    for cls in type(err).__mro__:
        if cls in ERROR_CODES:
            return ERROR_CODES[cls]
    return ERROR_INTERNAL
