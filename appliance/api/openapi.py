"""OpenAPI 3.1 description of the REST and KServe v2 API, built from the route table plus the facts below.

Per route: its parameters, its request body, and every status it answers with a schema for each. The
required scope comes from the endpoint itself (`@requires`), so the spec cannot drift from the access
rules; a guarded route also answers 401, 403 and 429. tests/test_schemathesis.py runs schemathesis
(stateful, every check) against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from appliance import __version__
from appliance.api.auth import open_route
from appliance.api.bodies import JSONResponse
from appliance.api.schemas import COMPONENTS, MODEL_NAME, Schema, ref

JSON = "application/json"
BINARY: Schema = {"type": "string", "format": "binary"}
IMAGE_TYPES = ("image/jpeg", "image/png", "application/octet-stream")
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No content",
    400: "Bad input: the error names what is wrong",
    401: "No valid token",
    403: "Token scope too small, or a browser session without its CSRF token",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body over the route's limit",
    415: "Wrong content type",
    429: "Too many requests (see Retry-After)",
    503: "Busy or not ready",
}
GUARDED = (401, 403, 429)


@dataclass(frozen=True)
class Op:
    """What the route table does not say about one operation."""

    summary: str
    ok: int = 200
    body: Schema | None = None  # the 2xx answer's JSON schema (None: no JSON body)
    errors: tuple[int, ...] = ()
    parameters: tuple[Schema, ...] = ()
    request: Schema | None = None
    media: dict[str, Schema] = field(default_factory=dict)  # 2xx answers that are not JSON


def query(name: str, schema: Schema, description: str = "") -> Schema:
    """An optional query parameter; like a form, an empty value means "not given"."""
    if "enum" in schema:
        schema = {**schema, "enum": [*schema["enum"], ""]}
    elif schema.get("type") != "string":
        schema = {"anyOf": [schema, EMPTY]}
    out = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**out, "description": description} if description else out


def path(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def json_body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def binary_body(types: tuple[str, ...], required: bool) -> Schema:
    return {"required": required, "content": {t: {"schema": BINARY} for t in types}}


TEXT: Schema = {"type": "string"}
EMPTY: Schema = {"type": "string", "maxLength": 0}
NUMBER: Schema = {"type": "number"}
FLAG: Schema = {"type": "string", "enum": ["0", "1", "true", "false", "yes", "no"]}
IMAGE = binary_body(IMAGE_TYPES, True)
OPTIONAL_IMAGE = binary_body(IMAGE_TYPES, False)
UPLOAD = (400, 413, 415)
V2_MODEL = path("model", MODEL_NAME)
V2_VERSION = path("version", {"type": "string", "pattern": "^[0-9]{1,9}$"})
MODEL_OPTIONS = (
    query("task", {"type": "string", "enum": ["classify", "detect", "segment", "raw"]}),
    query("name", MODEL_NAME),
    query("labels", TEXT, "comma-separated, in class order"),
    query("format", {"type": "string", "enum": ["tflite", "rknn"]}),
    query("layout", {"type": "string", "enum": ["nhwc", "nchw"]}),
    query("color", {"type": "string", "enum": ["rgb", "bgr", "gray"]}),
    query("mean", TEXT, "per-channel, comma-separated"),
    query("std", TEXT, "per-channel, comma-separated, not 0"),
    query("resize", {"type": "string", "enum": ["stretch", "letterbox"]}),
    query("score", {"type": "number", "minimum": 0, "maximum": 1}),
    query("iou", {"type": "number", "minimum": 0, "maximum": 1}),
    query("top_k", {"type": "integer", "minimum": 1, "maximum": 1000}),
    query("mask", {"type": "number", "minimum": 0, "maximum": 1}),
    query("decoder", {"type": "string", "enum": ["auto", "anchors", "yolo", "ssd_postprocessed"]}),
    query("description", TEXT),
)
TIME: Schema = {"anyOf": [NUMBER, {"type": "string", "format": "date-time"}]}
RESULT_FILTERS = (
    query("since", TIME, "epoch seconds or ISO 8601"),
    query("until", TIME, "epoch seconds or ISO 8601"),
    query("label", TEXT),
    query("model", TEXT),
    query("min_score", NUMBER),
    query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    query("cursor", {"type": "integer", "minimum": 1, "maximum": 2**62}),
)
V2_INFER = Op(
    "KServe v2 inference (JSON or Triton binary tensors)",
    body=ref("V2InferResponse"),
    errors=(400, 404, 409, 413, 503),
    request=json_body(ref("V2InferRequest")),
    media={"application/octet-stream": BINARY},
)

JOB_PATH = path("number", {"type": "integer", "minimum": 1, "maximum": 999})
JOB_VERSION = query("version", {"type": "integer", "minimum": 1, "maximum": 10**9})
DOCUMENT_TYPES = ("application/json", "application/toml", "text/plain")
INSPECTION_OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/api/v1/inspection/jobs"): Op(
        "Every inspection job (newest versions)", body=ref("InspectionJobs")
    ),
    ("GET", "/api/v1/inspection/jobs/{number}"): Op(
        "One job (newest or given version)",
        body=ref("InspectionJob"),
        errors=(400, 404),
        parameters=(JOB_PATH, JOB_VERSION),
    ),
    ("PUT", "/api/v1/inspection/jobs/{number}"): Op(
        "Save a job as its new version (validated; the active job is re-proven)",
        ok=201,
        body=ref("InspectionJob"),
        errors=(400, 404, 409, 413, 415, 503),
        parameters=(JOB_PATH,),
        request=json_body(ref("InspectionJob")),
    ),
    ("DELETE", "/api/v1/inspection/jobs/{number}"): Op(
        "Delete an inactive job and all its versions", ok=204, errors=(400, 404, 409), parameters=(JOB_PATH,)
    ),
    ("POST", "/api/v1/inspection/jobs/{number}/activate"): Op(
        "Activate a job: its models loaded and proven first, switched between triggers",
        body=ref("JobActivated"),
        errors=(400, 404, 409, 503),
        parameters=(JOB_PATH, JOB_VERSION),
    ),
    ("GET", "/api/v1/inspection/export"): Op(
        "Every job as one JSON document", media={"application/json": {"type": "object"}}
    ),
    ("POST", "/api/v1/inspection/import"): Op(
        "Import a jobs document (JSON or TOML); all jobs valid or nothing saved",
        ok=201,
        body=ref("JobsImported"),
        errors=(400, 413),
        request=binary_body(DOCUMENT_TYPES, True),
    ),
    ("GET", "/api/v1/inspection/counters"): Op(
        "Production counters, total and per job", body=ref("Counters")
    ),
    ("POST", "/api/v1/inspection/counters/reset"): Op(
        "Zero the production counters (all, or one job's)",
        body=ref("CountersReset"),
        errors=(400, 413, 415),
        request=json_body(ref("CounterReset"), required=False),
    ),
    ("GET", "/api/v1/dataset/export"): Op(
        "The hard-example dataset as a YOLO or COCO zip",
        errors=(400, 409),
        parameters=(query("format", {"type": "string", "enum": ["yolo", "coco"]}),),
        media={"application/zip": BINARY},
    ),
    ("POST", "/api/v1/dataset/flags"): Op(
        "Flag a stored result wrong or right: kept in the dataset",
        ok=201,
        body=ref("Example"),
        errors=(400, 404, 409, 413, 415),
        request=json_body(ref("Flag")),
    ),
}

OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/api/v1/health"): Op("Liveness and readiness", body=ref("Health"), errors=(503,)),
    ("GET", "/api/v1/status"): Op(
        "Source, model, backend, rates, latencies, queues, store", body=ref("Status")
    ),
    ("GET", "/api/v1/results/latest"): Op("The newest stored result", body=ref("Result"), errors=(404,)),
    ("GET", "/api/v1/results"): Op(
        "Stored results, newest first, filtered and paginated",
        body=ref("ResultPage"),
        errors=(400,),
        parameters=RESULT_FILTERS,
    ),
    ("POST", "/api/v1/infer"): Op(
        "Run the active model on one image",
        body=ref("Result"),
        errors=(*UPLOAD, 503),
        parameters=(query("store", FLAG),),
        request=IMAGE,
    ),
    ("POST", "/api/v1/frames"): Op(
        "Push a frame to the push source (newest frame wins)",
        ok=202,
        body=ref("Frame"),
        errors=(*UPLOAD, 409),
        request=IMAGE,
    ),
    ("POST", "/api/v1/trigger"): Op(
        "Inspect now (next frame or posted image); flat JSON for PLCs",
        body=ref("Trigger"),
        errors=(*UPLOAD, 409, 503),
        request=OPTIONAL_IMAGE,
    ),
    ("POST", "/api/v1/jobs"): Op(
        "Start an inspection; answers a job id at once",
        ok=202,
        body=ref("Job"),
        errors=(*UPLOAD, 503),
        request=OPTIONAL_IMAGE,
    ),
    ("GET", "/api/v1/jobs/{job_id}"): Op(
        "State and result of a job", body=ref("Job"), errors=(404,), parameters=(path("job_id", TEXT),)
    ),
    ("GET", "/api/v1/models"): Op("Every model version in the registry", body=ref("Models")),
    ("POST", "/api/v1/models"): Op(
        "Upload a model file (at most server.max_model_bytes); validated before it is stored",
        ok=201,
        body=ref("Model"),
        errors=(400, 409, 413),
        parameters=MODEL_OPTIONS,
        request=binary_body(("application/octet-stream",), True),
    ),
    ("POST", "/api/v1/models/rollback"): Op(
        "Re-activate the previously active model", body=ref("Active"), errors=(409, 503)
    ),
    ("GET", "/api/v1/models/shadow"): Op(
        "The shadow run: candidate, agreement with the active model, latencies, disagreeing examples",
        body=ref("Shadow"),
    ),
    ("POST", "/api/v1/models/shadow"): Op(
        "Shadow a candidate beside the active model on live frames (replaces a running shadow run)",
        body=ref("Shadow"),
        errors=(400, 404, 409, 413, 415, 503),
        request=json_body(ref("ShadowStart")),
    ),
    ("DELETE", "/api/v1/models/shadow"): Op(
        "Stop the shadow run (its statistics stay readable)", body=ref("Shadow"), errors=(409,)
    ),
    ("GET", "/api/v1/models/shadow/examples/{example_id}"): Op(
        "JPEG thumbnail of a frame on which the candidate disagreed",
        errors=(404,),
        parameters=(path("example_id", TEXT),),
        media={"image/jpeg": BINARY},
    ),
    ("POST", "/api/v1/models/{name}/promote"): Op(
        "Activate a shadowed candidate on its agreement (or an override), recorded in its manifest",
        body=ref("Promoted"),
        errors=(400, 404, 409, 413, 415, 503),
        parameters=(path("name", MODEL_NAME),),
        request=json_body(ref("Promote"), required=False),
    ),
    ("POST", "/api/v1/models/{name}/activate"): Op(
        "Activate a model (newest or given version)",
        body=ref("Active"),
        errors=(400, 404, 409, 413, 415, 503),
        parameters=(path("name", MODEL_NAME),),
        request=json_body(ref("Activate"), required=False),
    ),
    ("DELETE", "/api/v1/models/{name}/versions/{version}"): Op(
        "Delete an inactive model version",
        ok=204,
        errors=(400, 404, 409),
        parameters=(
            path("name", MODEL_NAME),
            path("version", {"type": "integer", "minimum": 1, "maximum": 10**9}),
        ),
    ),
    ("GET", "/api/v1/config"): Op("The running configuration", body=ref("Config")),
    ("PATCH", "/api/v1/config"): Op(
        "Change configuration keys (validated as a whole; nothing applied unless all is valid)",
        body=ref("ConfigChanged"),
        errors=(400, 409, 413, 415, 503),
        request=json_body(ref("ConfigPatch")),
    ),
    ("POST", "/api/v1/restart"): Op(
        "Restart the appliance process", ok=202, body=ref("Restarting"), errors=(503,)
    ),
    ("GET", "/api/v1/system"): Op(
        "Both system slots (A/B), their versions, which booted, the last rollback", body=ref("System")
    ),
    ("POST", "/api/v1/system/update"): Op(
        "Install a signed RAUC bundle into the other slot (it boots at the next reboot)",
        body=ref("SystemInstalled"),
        errors=(400, 409, 413, 422),
        parameters=(query("reboot", {"type": "string", "enum": ["0", "1", "true", "false"]}),),
        request=binary_body(("application/octet-stream",), True),
    ),
    ("POST", "/api/v1/system/reboot"): Op("Reboot the device", ok=202, body=ref("Rebooting"), errors=(409,)),
    ("GET", "/api/v1/setup"): Op("Whether first-boot setup is still needed", body=ref("SetupState")),
    ("POST", "/api/v1/setup"): Op(
        "Set the admin password once; returns an admin token",
        ok=201,
        body=ref("SetupDone"),
        errors=(400, 409, 413, 415),
        request=json_body(ref("SetupRequest")),
    ),
    ("GET", "/api/v1/tokens"): Op("List API tokens", body=ref("Tokens")),
    ("POST", "/api/v1/tokens"): Op(
        "Create an API token (shown once)",
        ok=201,
        body=ref("NewToken"),
        errors=(400, 409, 413, 415),
        request=json_body(ref("TokenRequest")),
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): Op(
        "Revoke an API token (not the one making the request)",
        ok=204,
        errors=(404, 409),
        parameters=(path("token_id", TEXT),),
    ),
    ("GET", "/api/openapi.json"): Op("This description", body={"type": "object"}),
    ("GET", "/metrics"): Op("Prometheus metrics", media={"text/plain": TEXT}),
    ("GET", "/api/v1/debug/profile"): Op(
        "Sample the process with py-spy for N seconds; flame graph SVG or speedscope JSON",
        errors=(400, 503),
        parameters=(
            query("seconds", {"type": "integer", "minimum": 1, "maximum": 60}),
            query("format", {"type": "string", "enum": ["flamegraph", "speedscope"]}),
        ),
        media={"image/svg+xml": TEXT, JSON: {"type": "object"}},
    ),
    ("GET", "/v2/health/live"): Op("KServe v2: the server is live", body=ref("V2Live")),
    ("GET", "/v2/health/ready"): Op("KServe v2: the server is ready", body=ref("V2Ready"), errors=(503,)),
    ("GET", "/v2"): Op("KServe v2 server metadata", body=ref("V2Server")),
    ("GET", "/v2/models/{model}"): Op(
        "KServe v2 model metadata (newest version)",
        body=ref("V2Model"),
        errors=(404,),
        parameters=(V2_MODEL,),
    ),
    ("GET", "/v2/models/{model}/versions/{version}"): Op(
        "KServe v2 model metadata", body=ref("V2Model"), errors=(404,), parameters=(V2_MODEL, V2_VERSION)
    ),
    ("GET", "/v2/models/{model}/ready"): Op(
        "KServe v2 model readiness", body=ref("V2ModelReady"), errors=(404,), parameters=(V2_MODEL,)
    ),
    ("GET", "/v2/models/{model}/versions/{version}/ready"): Op(
        "KServe v2 model readiness",
        body=ref("V2ModelReady"),
        errors=(404,),
        parameters=(V2_MODEL, V2_VERSION),
    ),
    **INSPECTION_OPERATIONS,
    ("POST", "/v2/models/{model}/infer"): replace(V2_INFER, parameters=(V2_MODEL,)),
    ("POST", "/v2/models/{model}/versions/{version}/infer"): replace(
        V2_INFER, parameters=(V2_MODEL, V2_VERSION)
    ),
}


def _response(status: int, schema: Schema | None, media: dict[str, Schema] | None = None) -> Schema:
    answer: Schema = {"description": REASONS.get(status, "OK")}
    content = {JSON: {"schema": schema}} if schema is not None else {}
    content.update({kind: {"schema": s} for kind, s in (media or {}).items()})
    if content:
        answer["content"] = content
    return answer


def _operation(method: str, route: Route) -> Schema:
    op = OPERATIONS.get((method, route.path)) or Op(route.path)
    scope = getattr(route.endpoint, "required_scope", None)
    responses = {str(op.ok): _response(op.ok, op.body, op.media)}
    for status in sorted({*op.errors, *(GUARDED if scope else ())}):
        responses[str(status)] = _response(status, ref("Error"))
    operation: Schema = {
        "summary": op.summary,
        "operationId": f"{method.lower()}_{route.name}_{route.path.count('/')}",
        "responses": responses,
        "security": [{"bearer": []}] if scope else [],
    }
    if scope:
        operation["x-scope"] = scope
    if op.parameters:
        operation["parameters"] = list(op.parameters)
    if op.request is not None:
        operation["requestBody"] = op.request
    return operation


def build_spec(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(method, route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "edge-appliance", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@open_route
async def openapi(request: Request) -> Response:
    return JSONResponse(build_spec(request.app.state.api_routes))
