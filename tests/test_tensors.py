"""KServe v2 request checking without a server: whatever the body, a checked request or a 400."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.tensors import parse_request
from appliance.errors import BadRequest
from appliance.models.manifest import Manifest
from appliance.tensorspec import TensorSpec

MANIFEST = Manifest(
    name="m",
    version=1,
    task="raw",
    file="model.tflite",
    sha256="0",
    size=1,
    created="",
    inputs=(TensorSpec("x", (1, 2), "uint8"),),
    outputs=(TensorSpec("y", (1, 2), "float32"), TensorSpec("z", (1,), "int32")),
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(["name", "shape", "datatype", "data", "parameters", "binary_data_size", "x", "UINT8"])
INPUT = st.dictionaries(KEYS, JSON | st.just("x") | st.just([1, 2]) | st.just("UINT8"), max_size=5)
DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON,
        "inputs": st.lists(INPUT, max_size=3) | JSON,
        "outputs": st.lists(
            st.dictionaries(st.sampled_from(["name", "parameters"]), JSON | st.just("y")), max_size=3
        )
        | JSON,
        "parameters": st.dictionaries(st.text(max_size=8), JSON, max_size=3) | JSON,
    },
)


@settings(max_examples=400, deadline=None)
@given(document=DOCUMENT, binary=st.binary(max_size=8))
def test_any_document_is_checked_or_refused_with_400(document: dict[str, object], binary: bytes) -> None:
    head = json.dumps(document).encode()
    try:
        checked = parse_request(head + binary, str(len(head)) if binary else None, MANIFEST)
    except BadRequest:
        return
    assert list(checked.inputs) == ["x"]
    assert checked.inputs["x"].shape == (1, 2) and checked.inputs["x"].dtype == np.uint8
    assert set(checked.outputs) <= {"y", "z"}


def test_a_good_request_in_json_and_in_binary() -> None:
    item = {"name": "x", "shape": [1, 2], "datatype": "UINT8", "data": [[3, 255]]}
    checked = parse_request(
        json.dumps({"inputs": [item], "outputs": [{"name": "z"}]}).encode(), None, MANIFEST
    )
    assert checked.inputs["x"].tolist() == [[3, 255]] and checked.outputs == ("z",)
    binary = {**item, "parameters": {"binary_data_size": 2}}
    del binary["data"]
    head = json.dumps({"inputs": [binary], "parameters": {"binary_data_output": True}}).encode()
    checked = parse_request(head + b"\x07\x08", str(len(head)), MANIFEST)
    assert checked.inputs["x"].tolist() == [[7, 8]] and checked.binary == {"y", "z"}
    for data in ([[3, 256]], [[3, -1]], [[3.0, 4]], [[True, False]], [["3", "4"]]):
        try:
            parse_request(json.dumps({"inputs": [{**item, "data": data}]}).encode(), None, MANIFEST)
        except BadRequest as err:
            assert "UINT8" in str(err)
        else:
            raise AssertionError(f"{data} accepted for UINT8")
