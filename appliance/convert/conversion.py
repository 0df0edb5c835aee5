"""`appliance models convert`: a source model -> .rknn (rknn-toolkit2 in its own venv) -> verified version.

Where the result goes: a NEW version of the registry model named by `--model` (default: the source's
file name). It holds the float twin (`model.tflite`: the source itself when it is a .tflite, else the
named version's .tflite), `model.rknn`, the settings of the named version (task, labels, input
normalisation, thresholds, decoder) and the verification report under `report`. Versions never
change once written, so the running model is untouched, activation stays a deliberate step, and
rollback works. A version whose report did not pass has `report.passed = false`: it is flagged and
cannot be activated unless `--force` is given (recorded as `report.forced`).

Verification never runs on calibration inputs: an int8 conversion verifies on `--verify DIR`, or on
a held-out split of `--calib` (every HOLD_OUT-th file, which is then not calibrated on), and is
refused when neither gives a distinct image. The simulator's outputs are read the way the board
reads them (rknnio.OutputConverter: raw integers dequantised, NCHW turned back), and the attributes
found are stored as `report.rknn` for the backend.

Inputs for calibration and verification go through the appliance's own pre-processing (the manifest's
input settings), so the board's runtime receives exactly what the pipeline produces. By default the
toolkit never normalises (`config()` gets no mean/std). With `--uint8-input` the manifest's mean/std
go to `config(mean_values=, std_values=)` instead: the toolkit, its simulator and the board get raw
uint8 NHWC pixels, the .rknn normalises them on the NPU, and `report.rknn.folded_input` records the
numbers (the manifest's `input` keeps them too: they still describe the float twin's input).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.backends.base import BackendOptions
from appliance.backends.failover import conform
from appliance.backends.litert import LiteRTBackend, read_specs
from appliance.backends.rknn import float_specs
from appliance.backends.rknnio import FoldedInput, OutputAttr, OutputConverter, nchw_of, per_channel
from appliance.convert import DEFAULT_SAMPLES, TARGETS
from appliance.convert.toolkit import Job, Toolkit, WorkerResult
from appliance.convert.verify import Comparison, VerifyThresholds, verify
from appliance.errors import ApplianceError, BadRequest, ModelRejected, NotFound
from appliance.models.manifest import Manifest
from appliance.models.registry import MANIFEST, AddRequest, Registry, write_json_atomic
from appliance.processing.image import Geometry, Preprocessor
from appliance.processing.inference import Transform
from appliance.processing.tasks import make_postprocessor
from appliance.processing.tensor import IDENTITY, TensorPreprocessor
from appliance.tensorspec import TensorSpec

SOURCE_SUFFIXES = (".onnx", ".tflite")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SYNTHETIC_SEED = 20251125
SYNTHETIC_GRID = 8  # synthetic images: smooth noise upscaled from an 8x8 grid, more like photos
HOLD_OUT = 4  # without --verify, every 4th calibration file is held out for verification
MIN_FOR_SPLIT = 4

Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class ConvertRequest:
    source: Path
    model: str = ""  # NAME or NAME:VERSION; default: the source's file name
    target: str = "rk3588"
    quantize: bool = False
    calib: Path | None = None
    samples: int = DEFAULT_SAMPLES
    limits: VerifyThresholds = field(default_factory=VerifyThresholds)
    verify: Path | None = None  # verification inputs; an int8 build never verifies on its calibration
    uint8_input: bool = False  # fold the manifest's mean/std into the .rknn: the board is fed raw uint8


@dataclass(frozen=True)
class InputPlan:
    calibrate: tuple[Path, ...]
    verify: tuple[Path, ...] | None  # None: synthetic inputs (fp16 without any folder)
    held_out: bool = False


@dataclass
class Samples:
    tensors: list[np.ndarray] = field(default_factory=list)
    transforms: list[Transform] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    dataset: Path | None = None
    held_out: bool = False
    folded: FoldedInput | None = None


def resolve(registry: Registry, request: ConvertRequest) -> tuple[Manifest, Path]:
    """The registry version whose settings the result takes, and the float twin .tflite."""
    suffix = request.source.suffix.lower()
    if suffix not in SOURCE_SUFFIXES or not request.source.is_file():
        raise BadRequest(f"{request.source}: give an existing .onnx or .tflite file")
    if request.target not in TARGETS:
        raise BadRequest(f"target {request.target!r} is not one of {', '.join(TARGETS)}")
    if request.quantize and request.calib is None:
        raise BadRequest("--int8 needs --calib DIR: images (or .npy tensors) like the ones the model sees")
    name, _, version = (request.model or request.source.stem).partition(":")
    try:
        base = registry.get(name, int(version) if version else None)
    except NotFound as err:
        raise NotFound(
            f"{err}: add the float .tflite first (appliance models add MODEL.tflite --task ... --name "
            f"{name}) or name it with --model"
        ) from err
    twin = request.source if suffix == ".tflite" else registry.files_of(base).get(".tflite")
    if twin is None:
        raise ModelRejected(f"model {base.ref} has no .tflite twin to verify against and fall back to")
    return base, twin


def _input_files(folder: Path | None, flag: str) -> list[Path]:
    if folder is None:
        return []
    if not folder.is_dir():
        raise BadRequest(f"{flag} {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"))
    if not files:
        raise BadRequest(f"{flag} {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) or .npy files")
    return files


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plan_inputs(request: ConvertRequest) -> InputPlan:
    """Which files calibrate and which verify; for int8 the two never share an image."""
    calib = _input_files(request.calib, "--calib")
    verify = _input_files(request.verify, "--verify")
    if not request.quantize:
        chosen = verify or calib
        return InputPlan((), tuple(chosen) if chosen else None)
    held_out = not verify
    if held_out:
        if len(calib) < MIN_FOR_SPLIT:
            raise BadRequest(
                f"--int8 verifies on images it did not calibrate on: give --verify DIR, or at least "
                f"{MIN_FOR_SPLIT} files in --calib so every {HOLD_OUT}th can be held out ({len(calib)} given)"
            )
        verify = calib[::HOLD_OUT]
        calib = [p for i, p in enumerate(calib) if i % HOLD_OUT]
    seen = {_digest(p) for p in calib}
    distinct = [p for p in verify if _digest(p) not in seen]
    if not distinct:
        raise BadRequest(
            f"--verify {request.verify}: every file is also a calibration file; an int8 model must be "
            "verified on images it was not calibrated on"
        )
    return InputPlan(tuple(calib), tuple(distinct), held_out)


def _synthetic(spec: TensorSpec, image: bool, count: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(SYNTHETIC_SEED)
    for _ in range(count):
        if image:
            grid = rng.integers(0, 256, (SYNTHETIC_GRID, SYNTHETIC_GRID, 3), dtype=np.uint8)
            yield cv2.resize(grid, (spec.shape[2], spec.shape[1]), interpolation=cv2.INTER_CUBIC)
        else:
            yield rng.standard_normal(spec.shape).astype(np.float32)


def _raw_inputs(
    spec: TensorSpec, image: bool, files: tuple[Path, ...] | None, count: int
) -> Iterator[np.ndarray]:
    if files is None:
        yield from _synthetic(spec, image, count)
        return
    for path in files:
        raw = np.load(path) if path.suffix == ".npy" else cv2.imread(str(path), cv2.IMREAD_COLOR)
        if raw is None:
            raise BadRequest(f"{path}: not a readable image")
        yield raw


def _preprocessor(base: Manifest, spec: TensorSpec) -> Callable[[np.ndarray], tuple[np.ndarray, Transform]]:
    try:
        return Preprocessor(spec, base.input, ring=1)
    except ModelRejected:
        return TensorPreprocessor(spec)


def _calibration_layout(tensor: np.ndarray, layout: str) -> np.ndarray:
    """rknn-toolkit2 reads calibration .npy files of image inputs as NCHW, whatever the source format."""
    if layout == "nhwc" and tensor.ndim == 4:
        return np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))
    return tensor


def fold(base: Manifest, spec: TensorSpec) -> FoldedInput:
    """--uint8-input: the manifest's mean/std, one per channel, for rknn.config()."""
    if spec.dtype != "float32":
        raise BadRequest(
            f"--uint8-input: input {spec.name!r} is {spec.dtype} already; only a float input has a "
            "mean/std to fold into the .rknn"
        )
    try:
        channels = Geometry.of(spec, base.input.layout).channels
    except ModelRejected as err:
        raise BadRequest(f"--uint8-input needs an image input: {err}") from err
    return FoldedInput(per_channel(base.input.mean, channels), per_channel(base.input.std, channels))


def _raw_preprocessor(
    base: Manifest, spec: TensorSpec
) -> Callable[[np.ndarray], tuple[np.ndarray, Transform]]:
    """The board's pre-processing of a folded model: resize and colour only, uint8 out."""
    pixels = dataclasses.replace(spec, dtype="uint8", scale=0.0, zero_point=0)
    return Preprocessor(pixels, dataclasses.replace(base.input, mean=(0.0,), std=(1.0,)), ring=1)


def prepare_samples(base: Manifest, spec: TensorSpec, request: ConvertRequest, workdir: Path) -> Samples:
    """Pre-process the inputs; write the calibration set and the (distinct) verification samples.

    With --uint8-input the toolkit and its simulator get raw uint8 pixels (it normalises them with the
    folded mean/std), while the float reference still gets the manifest's normalised input."""
    pre = _preprocessor(base, spec)
    image = isinstance(pre, Preprocessor)
    samples = Samples(folded=fold(base, spec) if request.uint8_input else None)
    board = _raw_preprocessor(base, spec) if samples.folded else pre
    plan = plan_inputs(request)
    calib_dir, sample_dir = workdir / "calib", workdir / "samples"
    calib_dir.mkdir()
    sample_dir.mkdir()
    lines = []
    for index, raw in enumerate(_raw_inputs(spec, image, plan.calibrate, len(plan.calibrate))):
        tensor = board(raw)[0].copy()  # the preprocessor reuses its buffer
        np.save(calib_dir / f"{index:05d}.npy", _calibration_layout(tensor, base.input.layout))
        lines.append(str(calib_dir / f"{index:05d}.npy"))
    for index, raw in enumerate(_raw_inputs(spec, image, plan.verify, request.samples)):
        if index >= request.samples:
            break
        tensor, transform = pre(raw)
        tensor = tensor.copy()
        np.save(sample_dir / f"{index:05d}.npy", board(raw)[0] if samples.folded else tensor)
        samples.files.append(sample_dir / f"{index:05d}.npy")
        samples.tensors.append(tensor)
        samples.transforms.append(transform if image else IDENTITY)
    samples.held_out = plan.held_out
    if lines:
        samples.dataset = workdir / "dataset.txt"
        samples.dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return samples


def reference_outputs(twin: Path, samples: Samples) -> list[list[np.ndarray]]:
    """LiteRT's outputs for every sample, dequantised to float like RKNNLite's."""
    context = LiteRTBackend().open(twin, BackendOptions(threads=2, contexts=1))[0]
    wanted = float_specs(context.outputs)
    try:
        outputs = []
        for tensor in samples.tensors:
            result = context.run([tensor])
            conform(result, context.outputs, wanted)
            outputs.append([np.asarray(o, dtype=np.float32) for o in result])
        return outputs
    finally:
        context.close()


def store_version(
    registry: Registry, base: Manifest, twin: Path, rknn: Path, report: dict[str, Any]
) -> Manifest:
    """A new version: the twin (validated by the registry as usual), model.rknn and the report."""
    note = f".rknn for {report.get('target', '?')} ({report.get('dtype', '?')})"
    added = registry.add(
        AddRequest(
            source=twin,
            task=base.task,
            name=base.name,
            labels=base.labels,
            input=base.input,
            thresholds=base.thresholds,
            decoder=base.decoder,
            description=f"{base.description} + {note}".strip(" +"),
        )
    )
    folder = registry.version_dir(added.name, added.version)
    shutil.copyfile(rknn, folder / "model.rknn")
    manifest = dataclasses.replace(added, files={**added.files, ".rknn": "model.rknn"}, report=report)
    write_json_atomic(folder / MANIFEST, manifest.to_json())
    return manifest


def output_attrs(raw: list[np.ndarray], twin: tuple[TensorSpec, ...]) -> list[OutputAttr]:
    """The runtime's output attributes, from what the simulator returned and the twin's quantisation."""
    attrs = []
    for array, spec in zip(raw, twin, strict=False):
        layout = "nhwc"
        if array.ndim == 4 and len(spec.shape) == 4 and tuple(array.shape) != spec.shape:
            layout = "nchw" if tuple(array.shape) == nchw_of(spec.shape) else "nhwc"
        scale, zero_point = 0.0, 0
        if array.dtype.kind in "iu" and spec.quantized and spec.dtype == array.dtype.name:
            scale, zero_point = spec.scale, spec.zero_point
        attrs.append(OutputAttr(array.dtype.name, scale, zero_point, layout))
    return attrs


def _candidate(
    result: WorkerResult, twin: tuple[TensorSpec, ...]
) -> tuple[list[list[np.ndarray]], list[OutputAttr]]:
    raw = []
    for path in result.outputs:
        with np.load(path) as saved:
            raw.append([saved[f"arr_{k}"] for k in range(len(saved.files))])
    attrs = output_attrs(raw[0], twin) if raw else []
    convert = OutputConverter("simulator", twin, attrs)
    try:
        return [convert(sample) for sample in raw], attrs
    except ApplianceError as err:
        raise ModelRejected(f"the simulator's outputs do not fit the model: {err}") from err


def _report(
    request: ConvertRequest, base: Manifest, twin: Path, result: WorkerResult, samples: Samples
) -> dict[str, Any]:
    inputs, outputs = read_specs(twin)
    floats = float_specs(outputs)
    candidate, attrs = _candidate(result, outputs)
    comparison = Comparison(
        base.task,
        tuple(s.name for s in floats),
        reference_outputs(twin, samples),
        candidate,
        samples.transforms,
    )
    post = make_postprocessor(base, inputs, floats) if base.task in ("classify", "detect") else None
    return {
        "tool": "rknn-toolkit2",
        "toolkit": result.toolkit,
        "target": request.target,
        "dtype": "int8" if request.quantize else "fp16",
        "source": request.source.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "verified_on": "held-out calibration split" if samples.held_out else _verified_on(request),
        "rknn": _rknn_report(request, attrs, samples),
        **verify(comparison, post, request.limits),
    }


def _rknn_report(request: ConvertRequest, attrs: list[OutputAttr], samples: Samples) -> dict[str, Any]:
    """What the backend reads (rknnio.declared): output attributes, source, folded mean/std."""
    rknn: dict[str, Any] = {
        "outputs": [a.to_json() for a in attrs],
        "source": request.source.suffix.lstrip("."),
    }
    if samples.folded is not None:
        rknn["folded_input"] = {"mean": list(samples.folded.mean), "std": list(samples.folded.std)}
    return rknn


def _verified_on(request: ConvertRequest) -> str:
    if request.verify is not None:
        return f"--verify {request.verify}"
    return f"--calib {request.calib} (fp16: no calibration)" if request.calib else "synthetic inputs"


def convert(registry: Registry, toolkit: Toolkit, request: ConvertRequest, progress: Progress) -> Manifest:
    """Convert, simulate, verify and store; returns the new version's manifest (check report.passed)."""
    base, twin = resolve(registry, request)
    toolkit.check()
    spec = read_specs(twin)[0][0]
    with tempfile.TemporaryDirectory(prefix="appliance-convert-") as tmp:
        workdir = Path(tmp)
        progress("samples", f"pre-processing inputs with the settings of {base.ref}")
        samples = prepare_samples(base, spec, request, workdir)
        job = Job(
            request.source,
            request.target,
            request.quantize,
            samples.dataset,
            tuple(samples.files),
            workdir,
            samples.folded,
        )
        result = toolkit.run(job, progress)
        progress("verify", f"simulator against LiteRT on {len(samples.tensors)} sample(s)")
        report = _report(request, base, twin, result, samples)
        progress("store", f"new version of {base.name} in the registry")
        return store_version(registry, base, twin, result.rknn, report)
