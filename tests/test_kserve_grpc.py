"""KServe v2 over gRPC with the stock `tritonclient.grpc`, against a real server on 127.0.0.1: the same
tensors as REST (binary and JSON) and as LiteRT run directly, the same validation and the same tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from ai_edge_litert.interpreter import Interpreter
from tritonclient.utils import InferenceServerException

from appliance.models.registry import Registry
from appliance_tools.demo import stripes
from tests.conftest import LiveServer, config_for, free_port, start_server


def direct(registry: Registry, name: str, array: np.ndarray) -> list[np.ndarray]:
    """Every output of the model, from LiteRT run directly on `array`."""
    interpreter = Interpreter(model_path=str(registry.files_of(registry.get(name))[".tflite"]))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], array)
    interpreter.invoke()
    return [np.asarray(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]


@pytest.fixture
def grpc_server(data_dir: Path) -> Iterator[tuple[LiveServer, int]]:
    port = free_port()
    server = start_server(config_for(data_dir, f"[grpc]\nenabled = true\nport = {port}\n"))
    server.setup()
    yield server, port
    server.stop()


def _face_input(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 128, 128, 3), dtype=np.float32)


def _grpc_infer(port: int, token: str, tensor: np.ndarray, model: str = "face") -> dict[str, np.ndarray]:
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    request = triton_grpc.InferInput("input", list(tensor.shape), "FP32")
    request.set_data_from_numpy(tensor)
    answer = client.infer(model, [request], headers={"authorization": f"Bearer {token}"}, request_id="7")
    assert answer.get_response().id == "7"
    return {o.name: answer.as_numpy(o.name) for o in answer.get_response().outputs}


def _http_infer(server: LiveServer, tensor: np.ndarray, binary: bool) -> dict[str, np.ndarray]:
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    request = triton_http.InferInput("input", list(tensor.shape), "FP32")
    request.set_data_from_numpy(tensor, binary_data=binary)
    headers = {"authorization": f"Bearer {server.token}"}
    meta = client.get_model_metadata("face", headers=headers)
    wanted = [triton_http.InferRequestedOutput(o["name"], binary_data=binary) for o in meta["outputs"]]
    answer = client.infer("face", [request], outputs=wanted, headers=headers)
    return {o["name"]: answer.as_numpy(o["name"]) for o in meta["outputs"]}


def test_grpc_rest_binary_rest_json_and_litert_give_the_same_tensors(
    grpc_server: tuple[LiveServer, int], registry: Registry
) -> None:
    server, port = grpc_server
    tensor = _face_input(3)
    expected = direct(registry, "face", tensor)
    over_grpc = _grpc_infer(port, server.token, tensor)
    binary, json = _http_infer(server, tensor, True), _http_infer(server, tensor, False)
    assert list(over_grpc) == list(binary) == list(json) and len(expected) == len(over_grpc) == 2
    for want, name in zip(expected, over_grpc, strict=True):
        assert over_grpc[name].dtype == binary[name].dtype == np.float32
        assert np.array_equal(over_grpc[name], want)  # raw bytes both ways: bit-identical
        assert np.array_equal(binary[name], want)
        assert np.allclose(json[name], want, rtol=1e-6, atol=1e-6)  # JSON numbers: float32 round trip


def test_grpc_metadata_readiness_and_quantised_model(
    grpc_server: tuple[LiveServer, int], registry: Registry
) -> None:
    server, port = grpc_server
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    headers = {"authorization": f"Bearer {server.token}"}
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("stripes", headers=headers)
    meta = client.get_model_metadata("stripes", headers=headers, as_json=True)
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": ["1", "64", "64", "3"]}]
    assert client.get_server_metadata(headers=headers).extensions == ["binary_tensor_data"]
    sample = stripes.make_sample("horizontal_stripes", np.random.default_rng(9))[None]
    request = triton_grpc.InferInput("image", [1, 64, 64, 3], "UINT8")
    request.set_data_from_numpy(sample)
    answer = client.infer("stripes_uint8", [request], headers=headers, model_version="1")
    assert np.array_equal(answer.as_numpy("probabilities"), direct(registry, "stripes_uint8", sample)[0])


def test_grpc_typed_contents_are_checked_like_json(
    grpc_server: tuple[LiveServer, int], registry: Registry
) -> None:
    """Contents in fp32_contents (no raw bytes) run like REST JSON data, and are refused the same way."""
    server, port = grpc_server
    stub = grpc.insecure_channel(f"127.0.0.1:{port}")
    infer = stub.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=triton_grpc.service_pb2.ModelInferRequest.SerializeToString,
        response_deserializer=triton_grpc.service_pb2.ModelInferResponse.FromString,
    )
    sample = stripes.make_sample("vertical_stripes", np.random.default_rng(5))
    tensor = (sample.astype(np.float32) / 255)[None]
    request = triton_grpc.service_pb2.ModelInferRequest(model_name="stripes")
    item = request.inputs.add(name="image", datatype="FP32", shape=[1, 64, 64, 3])
    item.contents.fp32_contents.extend(tensor.reshape(-1).tolist())
    metadata = (("authorization", f"Bearer {server.token}"),)
    reply = infer(request, metadata=metadata)
    out = np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(reply.outputs[0].shape)
    assert np.array_equal(out, direct(registry, "stripes", tensor)[0])
    del item.contents.fp32_contents[-1]
    with pytest.raises(grpc.RpcError) as short:
        infer(request, metadata=metadata)
    assert short.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "do not fit shape" in short.value.details()
    item.contents.ClearField("fp32_contents")
    item.contents.int_contents.extend([1] * tensor.size)
    with pytest.raises(grpc.RpcError) as wrong:
        infer(request, metadata=metadata)
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "fp32_contents" in wrong.value.details()
    stub.close()


def test_grpc_refuses_bad_requests_with_invalid_argument(grpc_server: tuple[LiveServer, int]) -> None:
    server, port = grpc_server
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    headers = {"authorization": f"Bearer {server.token}"}
    cases = [
        (triton_grpc.InferInput("input", [1, 64, 64, 3], "FP32"), np.zeros((1, 64, 64, 3), np.float32)),
        (triton_grpc.InferInput("input", [1, 128, 128, 3], "FP64"), np.zeros((1, 128, 128, 3))),
        (triton_grpc.InferInput("pixels", [1, 128, 128, 3], "FP32"), np.zeros((1, 128, 128, 3), np.float32)),
    ]
    needles = ["does not fit the model's", "the model takes FP32", "unexpected inference input 'pixels'"]
    for (request, data), needle in zip(cases, needles, strict=True):
        request.set_data_from_numpy(data)
        with pytest.raises(InferenceServerException) as refused:
            client.infer("face", [request], headers=headers)
        assert refused.value.status() == "StatusCode.INVALID_ARGUMENT", refused.value
        assert needle in refused.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("nope", headers=headers)
    assert unknown.value.status() == "StatusCode.NOT_FOUND"


def test_grpc_tokens_and_scopes(grpc_server: tuple[LiveServer, int]) -> None:
    server, port = grpc_server
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    reader = server.services.auth.create_token("reader", "read")
    request = triton_grpc.InferInput("input", [1, 128, 128, 3], "FP32")
    request.set_data_from_numpy(_face_input(1))
    for headers, status, needle in (
        ({}, "UNAUTHENTICATED", "needs a token with scope 'operate'"),
        ({"authorization": "Bearer not-a-token"}, "UNAUTHENTICATED", "invalid or revoked token"),
        ({"authorization": f"Bearer {reader}"}, "PERMISSION_DENIED", "does not allow 'operate'"),
    ):
        with pytest.raises(InferenceServerException) as refused:
            client.infer("face", [request], headers=headers)
        assert refused.value.status() == f"StatusCode.{status}" and needle in refused.value.message()
    assert client.get_model_metadata("face", headers={"authorization": f"Bearer {reader}"}).name == "face"
    with pytest.raises(InferenceServerException) as anonymous:
        client.get_model_metadata("face")
    assert anonymous.value.status() == "StatusCode.UNAUTHENTICATED"
    assert client.is_server_live()  # health needs no token, as /v2/health/*
