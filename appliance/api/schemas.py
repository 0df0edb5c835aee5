"""JSON Schemas of the API's request and response bodies, for the OpenAPI description (openapi.py)."""

from __future__ import annotations

from typing import Any

from appliance.api.tensors import DATATYPES
from appliance.auth.passwords import MIN_LENGTH
from appliance.models.manifest import NAME_PATTERN

Schema = dict[str, Any]


def obj(required_: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """An object with these properties (more may be added by later versions)."""
    schema: Schema = {"type": "object", "properties": properties}
    if required_:
        schema["required"] = list(required_)
    return schema


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_NUMBER: Schema = {"type": ["number", "null"]}
NULLABLE_INTEGER: Schema = {"type": ["integer", "null"]}
SCOPE: Schema = {"type": "string", "enum": ["read", "operate", "admin"]}
MODEL_NAME: Schema = {"type": "string", "pattern": NAME_PATTERN.pattern}
PARAMETERS: Schema = {
    "type": "object",
    "additionalProperties": {"type": ["boolean", "number", "string"]},
}
TENSOR_META = obj(("name", "datatype", "shape"), name=STRING, datatype=STRING, shape=array(INTEGER))

COMPONENTS: dict[str, Schema] = {
    "Error": obj(("error",), error=STRING, error_code=INTEGER, problems=array(OBJECT)),
    "Health": obj(("status", "version"), status=STRING, version=STRING),
    "Status": obj(
        ("version", "ready", "uptime_s"), version=STRING, ready=BOOLEAN, uptime_s=NUMBER, system=ref("System")
    ),
    "System": obj(
        ("available",),
        available=BOOLEAN,
        reason=STRING,
        compatible=STRING,
        booted=STRING,
        version=NULLABLE_STRING,
        slots=array(
            obj(
                ("name", "bootname", "booted", "boot_status"),
                name=STRING,
                bootname=STRING,
                device=STRING,
                booted=BOOLEAN,
                boot_status=STRING,
                version=NULLABLE_STRING,
                installed_at=NULLABLE_STRING,
                primary=BOOLEAN,
            )
        ),
        rollback={"type": ["object", "null"]},
        events=array(OBJECT),
    ),
    "SystemInstalled": obj(
        ("slot", "reboot_required"),
        slot=STRING,
        version=NULLABLE_STRING,
        reboot_required=BOOLEAN,
        message=STRING,
    ),
    "Rebooting": obj(("rebooting",), rebooting=BOOLEAN),
    "Result": obj(
        ("seq", "ts", "model", "count"),
        seq=INTEGER,
        ts=NUMBER,
        time=STRING,
        source=NULLABLE_STRING,
        model=STRING,
        task=STRING,
        backend=NULLABLE_STRING,
        label=NULLABLE_STRING,
        label_id=NULLABLE_INTEGER,
        score=NULLABLE_NUMBER,
        count=INTEGER,
        detections=array(OBJECT),
    ),
    "ResultPage": obj(
        ("items", "next_cursor", "count"),
        items=array(ref("Result")),
        next_cursor=NULLABLE_INTEGER,
        count=INTEGER,
    ),
    "Trigger": obj(
        ("seq", "ok", "label", "label_id", "score", "count", "error_code"),
        seq=INTEGER,
        ok=BOOLEAN,
        label=STRING,
        label_id=INTEGER,
        score=NUMBER,
        count=INTEGER,
        latency_ms=NUMBER,
        model=STRING,
        error_code=INTEGER,
        job=INTEGER,
        pass_bits=INTEGER,
        reason_code=INTEGER,
        ng_region=INTEGER,
        reasons=array(STRING),
        regions=array(OBJECT),
    ),
    "Job": obj(
        ("job_id", "state"),
        job_id=STRING,
        state={"type": "string", "enum": ["queued", "running", "done", "failed"]},
        created=NUMBER,
        finished=NULLABLE_NUMBER,
        result={"type": ["object", "null"]},
        error=NULLABLE_STRING,
        error_code=NULLABLE_INTEGER,
    ),
    "Frame": obj(("frame_id",), frame_id=INTEGER),
    "Model": obj(
        ("name", "version", "task", "file", "sha256", "size"),
        name=STRING,
        version=INTEGER,
        task=STRING,
        file=STRING,
        sha256=STRING,
        size=INTEGER,
        labels=array(STRING),
        active=BOOLEAN,
    ),
    "Models": obj(("models", "active"), models=array(ref("Model")), active=NULLABLE_STRING),
    "Active": obj(("active",), active=STRING),
    "Config": obj(
        ("config",), config={"type": "object", "additionalProperties": OBJECT}, file=NULLABLE_STRING
    ),
    "ConfigChanged": obj(
        ("changed", "restart_needed", "config"),
        changed=array(STRING),
        restart_needed=array(STRING),
        config=OBJECT,
    ),
    "ConfigPatch": {"type": "object", "additionalProperties": OBJECT},
    "Restarting": obj(("restarting",), restarting=BOOLEAN),
    "SetupState": obj(("required",), required=BOOLEAN),
    "SetupRequest": obj(
        ("password",), password={"type": "string", "minLength": MIN_LENGTH, "maxLength": 1024}
    ),
    "SetupDone": obj(("token", "scope"), token=STRING, scope=SCOPE),
    "Token": obj(("id", "name", "scope"), id=STRING, name=STRING, scope=SCOPE, created=NUMBER),
    "Tokens": obj(("tokens",), tokens=array(ref("Token"))),
    "TokenRequest": {
        **obj(("name",), name={"type": "string", "pattern": r"\S", "maxLength": 64}, scope=SCOPE),
    },
    "NewToken": {**obj(("id", "name", "scope", "token"), token=STRING, id=STRING, name=STRING, scope=SCOPE)},
    "Activate": obj(version={"type": ["integer", "null"], "minimum": 1}),
    "Shadow": obj(
        ("state", "mode", "min_agreement", "min_frames", "examples"),
        state={"type": "string", "enum": ["none", "running", "stopped"]},
        mode=STRING,
        min_agreement=NUMBER,
        min_frames=INTEGER,
        examples=array(OBJECT),
        candidate=STRING,
        active=STRING,
        backend=STRING,
        reason=NULLABLE_STRING,
        shortfall=NULLABLE_STRING,
        stats=OBJECT,
    ),
    "ShadowStart": obj(("name",), name=MODEL_NAME, version={"type": ["integer", "null"], "minimum": 1}),
    "Promote": obj(version={"type": ["integer", "null"], "minimum": 1}, override=BOOLEAN),
    "Promoted": obj(("active", "promotion"), active=STRING, promotion=OBJECT),
    "V2Live": obj(("live",), live=BOOLEAN),
    "V2Ready": obj(("ready",), ready=BOOLEAN),
    "V2Server": obj(("name", "version", "extensions"), name=STRING, version=STRING, extensions=array(STRING)),
    "V2Model": obj(
        ("name", "versions", "platform", "inputs", "outputs"),
        name=STRING,
        versions=array(STRING),
        platform=STRING,
        inputs=array(TENSOR_META),
        outputs=array(TENSOR_META),
    ),
    "V2ModelReady": obj(("name", "ready"), name=STRING, ready=BOOLEAN),
    "V2InferRequest": obj(
        ("inputs",),
        id=STRING,
        parameters=PARAMETERS,
        inputs=array(
            obj(
                ("name", "shape", "datatype"),
                name=STRING,
                shape=array({"type": "integer", "minimum": 0}),
                datatype={"type": "string", "enum": list(DATATYPES)},
                parameters=PARAMETERS,
                data=array({"type": ["number", "boolean", "array"]}),
            )
        ),
        outputs=array(obj(("name",), name=STRING, parameters=PARAMETERS)),
    ),
    "V2InferResponse": obj(
        ("model_name", "outputs"),
        model_name=STRING,
        model_version=STRING,
        id=STRING,
        outputs=array(TENSOR_META),
    ),
}

# inspection jobs, production counters, hard-example dataset (appliance/api/jobs.py)
JOB_NUMBER: Schema = {"type": "integer", "minimum": 1, "maximum": 999}
MODEL_REF: Schema = obj(("name", "version"), name=MODEL_NAME, version={"type": "integer", "minimum": 1})
COUNTER_SET: Schema = obj(
    ("job", "triggers", "ok", "ng", "errors", "missed", "reset_at"),
    job=INTEGER,
    triggers=INTEGER,
    ok=INTEGER,
    ng=INTEGER,
    errors=INTEGER,
    missed=INTEGER,
    yield_pct=NULLABLE_NUMBER,
    time_ms=obj(min=NULLABLE_NUMBER, avg=NULLABLE_NUMBER, max=NULLABLE_NUMBER),
    reset_at=NUMBER,
)
COMPONENTS.update(
    {
        "InspectionJob": obj(
            ("number", "name", "model", "regions"),
            number=JOB_NUMBER,
            name=STRING,
            version=INTEGER,
            description=STRING,
            model=MODEL_REF,
            second_stage={"anyOf": [MODEL_REF, {"type": "null"}]},
            snapshot=OBJECT,
            regions={"type": "array", "items": OBJECT, "minItems": 1, "maxItems": 16},
        ),
        "InspectionJobs": obj(("jobs", "active"), jobs=array(ref("InspectionJob")), active=INTEGER),
        "JobActivated": obj(("active", "version"), active=INTEGER, version=INTEGER, name=STRING),
        "JobsImported": obj(
            ("imported",), imported=array(obj(("number", "version"), number=INTEGER, version=INTEGER))
        ),
        "Counters": obj(
            ("active_job", "total", "jobs"), active_job=INTEGER, total=COUNTER_SET, jobs=array(COUNTER_SET)
        ),
        "CounterReset": obj(job={"type": ["integer", "null"], "minimum": 0, "maximum": 999}),
        "CountersReset": obj(("reset_at", "job"), reset_at=NUMBER, job=INTEGER),
        "Flag": obj(
            ("result_id", "flag"),
            result_id={"type": "integer", "minimum": 1, "maximum": 2**62 - 1},
            flag={"type": "string", "enum": ["wrong", "right"]},
        ),
        "Example": obj(
            ("id", "reason"), id=STRING, reason=STRING, job=INTEGER, seq=INTEGER, boxes=array(OBJECT)
        ),
    }
)
