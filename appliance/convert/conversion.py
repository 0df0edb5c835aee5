"""`appliance models convert`: a source model -> .rknn (rknn-toolkit2 in its own venv) -> verified version.

Where the result goes: a NEW version of the registry model named by `--model` (default: the source's
file name). It holds the float twin (`model.tflite`: the source itself when it is a .tflite, else the
named version's .tflite), `model.rknn`, the settings of the named version (task, labels, input
normalisation, thresholds, decoder) and the verification report under `report`. Versions never
change once written, so the running model is untouched, activation stays a deliberate step, and
rollback works. A version whose report did not pass has `report.passed = false`: it is flagged and
must not be activated.

Inputs for calibration and verification go through the appliance's own pre-processing (the manifest's
input settings), so the toolkit never normalises (`config()` gets no mean/std) and the board's
runtime receives exactly what the pipeline produces.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.backends.base import BackendOptions, TensorSpec
from appliance.backends.failover import conform
from appliance.backends.litert import LiteRTBackend, read_specs
from appliance.backends.rknn import float_specs
from appliance.convert import DEFAULT_SAMPLES, TARGETS
from appliance.convert.toolkit import Job, Toolkit, WorkerResult
from appliance.convert.verify import Comparison, VerifyThresholds, verify
from appliance.errors import BadRequest, ModelRejected, NotFound
from appliance.models.manifest import Manifest
from appliance.models.registry import MANIFEST, AddRequest, Registry, write_json_atomic
from appliance.processing.image import Preprocessor
from appliance.processing.inference import Transform
from appliance.processing.tasks import make_postprocessor
from appliance.processing.tensor import IDENTITY, TensorPreprocessor

SOURCE_SUFFIXES = (".onnx", ".tflite")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SYNTHETIC_SEED = 20251125
SYNTHETIC_GRID = 8  # synthetic images: smooth noise upscaled from an 8x8 grid, more like photos

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


@dataclass
class Samples:
    tensors: list[np.ndarray] = field(default_factory=list)
    transforms: list[Transform] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    dataset: Path | None = None


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


def _calibration_files(calib: Path | None) -> list[Path]:
    if calib is None:
        return []
    if not calib.is_dir():
        raise BadRequest(f"--calib {calib}: not a folder")
    files = sorted(p for p in calib.iterdir() if p.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"))
    if not files:
        raise BadRequest(f"--calib {calib}: no images ({', '.join(IMAGE_SUFFIXES)}) or .npy files")
    return files


def _synthetic(spec: TensorSpec, image: bool, count: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(SYNTHETIC_SEED)
    for _ in range(count):
        if image:
            grid = rng.integers(0, 256, (SYNTHETIC_GRID, SYNTHETIC_GRID, 3), dtype=np.uint8)
            yield cv2.resize(grid, (spec.shape[2], spec.shape[1]), interpolation=cv2.INTER_CUBIC)
        else:
            yield rng.standard_normal(spec.shape).astype(np.float32)


def _raw_inputs(spec: TensorSpec, image: bool, request: ConvertRequest) -> Iterator[np.ndarray]:
    files = _calibration_files(request.calib)
    if not files:
        yield from _synthetic(spec, image, request.samples)
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


def prepare_samples(base: Manifest, spec: TensorSpec, request: ConvertRequest, workdir: Path) -> Samples:
    """Pre-process the calibration inputs; write the calibration set and the verification samples."""
    pre = _preprocessor(base, spec)
    image = isinstance(pre, Preprocessor)
    samples = Samples()
    calib_dir, sample_dir = workdir / "calib", workdir / "samples"
    calib_dir.mkdir()
    sample_dir.mkdir()
    lines = []
    for index, raw in enumerate(_raw_inputs(spec, image, request)):
        if index >= request.samples and not request.quantize:
            break
        tensor, transform = pre(raw)
        tensor = tensor.copy()  # the preprocessor reuses its buffer
        if request.quantize:
            np.save(calib_dir / f"{index:05d}.npy", _calibration_layout(tensor, base.input.layout))
            lines.append(str(calib_dir / f"{index:05d}.npy"))
        if index < request.samples:
            np.save(sample_dir / f"{index:05d}.npy", tensor)
            samples.files.append(sample_dir / f"{index:05d}.npy")
            samples.tensors.append(tensor)
            samples.transforms.append(transform if image else IDENTITY)
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


def _report(
    request: ConvertRequest, base: Manifest, twin: Path, result: WorkerResult, samples: Samples
) -> dict[str, Any]:
    inputs, outputs = read_specs(twin)
    floats = float_specs(outputs)
    candidate = []
    for path in result.outputs:
        with np.load(path) as saved:
            candidate.append([saved[f"arr_{k}"] for k in range(len(saved.files))])
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
        **verify(comparison, post, request.limits),
    }


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
            request.source, request.target, request.quantize, samples.dataset, tuple(samples.files), workdir
        )
        result = toolkit.run(job, progress)
        progress("verify", f"simulator against LiteRT on {len(samples.tensors)} sample(s)")
        report = _report(request, base, twin, result, samples)
        progress("store", f"new version of {base.name} in the registry")
        return store_version(registry, base, twin, result.rknn, report)
