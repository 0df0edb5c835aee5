"""KServe v2 with the stock Triton HTTP client, unchanged, against a real server."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from ai_edge_litert.interpreter import Interpreter

from appliance.demo import stripes
from appliance.models.registry import Registry
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
