"""KServe v2 with the stock Triton HTTP client, unchanged, against a real server."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from ai_edge_litert.interpreter import Interpreter

from appliance.models.registry import Registry
from appliance_tools.demo import stripes
from tests.conftest import LiveServer


def reference(registry: Registry, name: str, array: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_path=str(registry.files_of(registry.get(name))[".tflite"]))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], array)
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


@pytest.fixture
def client(live_server: LiveServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(live_server.url.removeprefix("http://"))


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infer(
    live_server: LiveServer, client: triton.InferenceServerClient, registry: Registry, binary: bool
) -> None:
    headers = {"Authorization": f"Bearer {live_server.token}"}
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("stripes", headers=headers)
    meta = client.get_model_metadata("stripes", headers=headers)
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [1, 64, 64, 3]}]
    rng = np.random.default_rng(5)
    sample = stripes.make_sample("vertical_stripes", rng)
    tensor = (sample.astype(np.float32) / 255.0)[None]
    request = triton.InferInput("image", [1, 64, 64, 3], "FP32")
    request.set_data_from_numpy(tensor, binary_data=binary)
    wanted = [triton.InferRequestedOutput("probabilities", binary_data=binary)]
    answer = client.infer("stripes", [request], outputs=wanted, headers=headers, request_id="42")
    probabilities = answer.as_numpy("probabilities")
    assert answer.get_response()["id"] == "42"
    assert np.allclose(probabilities, reference(registry, "stripes", tensor), atol=1e-6)
    assert stripes.LABELS[int(np.argmax(probabilities))] == "vertical_stripes"


def test_quantised_model_over_v2(
    live_server: LiveServer, client: triton.InferenceServerClient, registry: Registry
) -> None:
    headers = {"Authorization": f"Bearer {live_server.token}"}
    sample = stripes.make_sample("horizontal_stripes", np.random.default_rng(9))[None]
    request = triton.InferInput("image", [1, 64, 64, 3], "UINT8")
    request.set_data_from_numpy(sample)
    answer = client.infer("stripes_uint8", [request], headers=headers, model_version="1")
    out = answer.as_numpy("probabilities")
    assert out.dtype == np.uint8
    assert np.array_equal(out, reference(registry, "stripes_uint8", sample))


def test_v2_errors_and_auth(live_server: LiveServer) -> None:
    url = live_server.url
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2").status_code == 401
    api = live_server.client()
    assert api.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    assert api.get("/v2/models/nope").status_code == 404
    bad_shape = api.post(
        "/v2/models/stripes/infer",
        json={"inputs": [{"name": "image", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
    )
    assert bad_shape.status_code == 400 and "does not fit" in bad_shape.json()["error"]
    bad_type = api.post(
        "/v2/models/stripes/infer",
        json={"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
    )
    assert bad_type.status_code == 400 and "BYTES" in bad_type.json()["error"]
    assert (
        api.post(
            "/v2/models/stripes/infer", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    ok = api.post(
        "/v2/models/stripes/infer",
        json={
            "inputs": [
                {"name": "image", "shape": [1, 64, 64, 3], "datatype": "FP32", "data": [0.5] * (64 * 64 * 3)}
            ]
        },
    )
    assert ok.status_code == 200 and ok.json()["outputs"][0]["shape"] == [1, 3]


def v2_input(**override: object) -> dict[str, object]:
    item: dict[str, object] = {
        "name": "image",
        "shape": [1, 64, 64, 3],
        "datatype": "FP32",
        "data": [0.5] * (64 * 64 * 3),
    }
    return {**item, **override}


N = 64 * 64 * 3
BAD_REQUESTS: list[tuple[str, object, str]] = [
    ("wrong input name", {"inputs": [v2_input(name="pixels")]}, "unexpected inference input 'pixels'"),
    ("extra input", {"inputs": [v2_input(), v2_input(name="more")]}, "unexpected inference input"),
    ("input twice", {"inputs": [v2_input(), v2_input()]}, "expects 1 inputs"),
    ("no inputs", {"inputs": []}, "expects 1 inputs"),
    ("inputs not a list", {"inputs": {"image": 1}}, "'inputs' list"),
    ("string data", {"inputs": [v2_input(data=["0.5"] * N)]}, "FP32 values only"),
    ("BYTES datatype", {"inputs": [v2_input(datatype="BYTES", data=["x"])]}, "BYTES"),
    ("other datatype", {"inputs": [v2_input(datatype="FP64")]}, "the model takes FP32"),
    ("NCHW shape for NHWC", {"inputs": [v2_input(shape=[1, 3, 64, 64])]}, "does not fit the model's"),
    ("-1 batch", {"inputs": [v2_input(shape=[-1, 64, 64, 3])]}, "does not fit the model's"),
    ("batch 2", {"inputs": [v2_input(shape=[2, 64, 64, 3], data=[0.5] * 2 * N)]}, "does not fit"),
    ("non-integer shape", {"inputs": [v2_input(shape=[1, 64.5, 64, 3])]}, "whole numbers"),
    ("float-valued shape", {"inputs": [v2_input(shape=[1.0, 64, 64, 3])]}, "whole numbers"),
    ("string shape", {"inputs": [v2_input(shape="1,64,64,3")]}, "whole numbers"),
    ("boolean shape", {"inputs": [v2_input(shape=[True, 64, 64, 3])]}, "whole numbers"),
    ("short data", {"inputs": [v2_input(data=[0.5] * (N - 1))]}, "do not fit shape"),
    ("ragged data", {"inputs": [v2_input(data=[[0.5, 0.5], [0.5]])]}, "regular array"),
    ("null data", {"inputs": [v2_input(data=None)]}, "list of numbers"),
    ("no data", {"inputs": [{"name": "image", "shape": [1, 64, 64, 3], "datatype": "FP32"}]}, "required"),
    ("parameters a list", {"inputs": [v2_input()], "parameters": [1, 2]}, "must be a JSON object"),
    ("input parameters a list", {"inputs": [v2_input(parameters=["binary_data_size"])]}, "JSON object"),
    (
        "nested parameter",
        {"inputs": [v2_input()], "parameters": {"x": {"y": 1}}},
        "boolean, number or string",
    ),
    (
        "binary flag not bool",
        {"inputs": [v2_input()], "parameters": {"binary_data_output": "yes"}},
        "true or false",
    ),
    (
        "unknown output",
        {"inputs": [v2_input()], "outputs": [{"name": "logits"}]},
        "unexpected inference output",
    ),
    ("output not object", {"inputs": [v2_input()], "outputs": ["probabilities"]}, "list of objects"),
    ("id not a string", {"id": 42, "inputs": [v2_input()]}, "'id' must be a string"),
    ("not an object", [1, 2, 3], "JSON object"),
]


@pytest.mark.parametrize(("case", "document", "needle"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_v2_refuses_what_triton_refuses(
    live_server: LiveServer, case: str, document: object, needle: str
) -> None:
    reply = live_server.client().post("/v2/models/stripes/infer", json=document)
    assert reply.status_code == 400, reply.text[:300]
    assert needle in reply.json()["error"], reply.json()


def test_v2_malformed_bodies_and_binary_framing(live_server: LiveServer) -> None:
    api = live_server.client()
    url = "/v2/models/stripes/infer"
    header = {"content-type": "application/json"}
    for body, needle in (
        (b'{"inputs": [{"name": "\xff"}]}', "UTF-8"),
        (b"[" * 30_000, "deeper than"),
        (b'{"inputs": ', "not valid JSON"),
    ):
        reply = api.post(url, content=body, headers=header)
        assert reply.status_code == 400 and needle in reply.json()["error"], reply.text[:200]
    tensor = np.zeros((1, 64, 64, 3), np.float32).tobytes()
    for size, extra, needle in (
        (len(tensor) - 4, b"", "shape and datatype need"),
        (len(tensor), b"\0" * 8, "after the last input"),
        (len(tensor) * 2, b"", "shape and datatype need"),
        (-1, b"", "whole number of bytes"),
    ):
        document = {"inputs": [{**v2_input(), "parameters": {"binary_data_size": size}}]}
        del document["inputs"][0]["data"]
        head = json.dumps(document).encode()
        reply = api.post(
            url, content=head + tensor + extra, headers={"inference-header-content-length": str(len(head))}
        )
        assert reply.status_code == 400 and needle in reply.json()["error"], (size, reply.text[:200])
    reply = api.post(url, content=b"{}", headers={"inference-header-content-length": "99"})
    assert reply.status_code == 400 and "does not fit" in reply.json()["error"]
    assert api.get("/v2/models/\u0084").status_code == 404  # not even a model name: unknown
    ok = api.post(url, json={"inputs": [v2_input()], "outputs": [{"name": "probabilities"}]})
    assert ok.status_code == 200 and [o["name"] for o in ok.json()["outputs"]] == ["probabilities"]
