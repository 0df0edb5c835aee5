"""NPU backend: Rockchip's vendor shim rknn-toolkit-lite2 (`rknnlite.api.RKNNLite`).

The vendor module is imported inside `probe`/`open` only, so the package imports on any machine, and
its errors are translated here, once: `load_rknn`/`init_runtime` returning -1 become ModelRejected /
BackendUnavailable with a plain-words fix, `inference` returning None (the vendor only logs why;
rknn_lite.py catches every exception) becomes InferenceFailed.

RKNNLite cannot report tensor attributes, so the backend takes them from what the model declares:
the version's manifest (`report.rknn.outputs`, written by `appliance models convert` from the
simulator: dtype, scale, zero point, layout), else the float twin (the `.tflite` of the same name
beside the `.rknn`, which also feeds the CPU fallback). Raw integer outputs are dequantised with
those attributes, NCHW 4-D outputs (ONNX-sourced models) are turned back into the twin's NHWC, and
anything else that does not fit is an InferenceFailed, never a wrong number. The input layout passed
as `data_format` is the manifest's `input.layout`.

Core policy: `auto` lets the driver pick (NPU_CORE_AUTO); `core0` ... `core0_1_2` pin every context
to that mask; `per-core` pins context i to core i mod N, N the SoC's NPU cores (3 on RK3588). Every
context lives on its own thread (runner.py) with a deadline per inference; failover.py routes frames
around hung or failed contexts to a spare context or the one shared CPU pool.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from appliance.backends.base import Backend, BackendOptions, Context
from appliance.backends.cpupool import CPUPool, PoolSize
from appliance.backends.failover import Deadline, FailoverContext, NPUGroup
from appliance.backends.litert import LiteRTBackend, read_specs
from appliance.backends.rknnio import Declared, OutputConverter, declared
from appliance.backends.runner import NPURunner, RetryPolicy
from appliance.errors import BackendUnavailable, InferenceFailed, ModelRejected
from appliance.platform import LITE_FIX, PlatformReport, ProbeSources, probe_platform
from appliance.tensorspec import TensorSpec

logger = logging.getLogger(__name__)

NPU_CORE_AUTO = 0
CORE_MASKS = {"core0": 1, "core1": 2, "core2": 4, "core0_1": 3, "core0_1_2": 7}
MASK_NAMES = {
    0: "NPU_CORE_AUTO",
    1: "NPU_CORE_0",
    2: "NPU_CORE_1",
    4: "NPU_CORE_2",
    3: "NPU_CORE_0_1",
    7: "NPU_CORE_0_1_2",
}
CHANNEL_COUNTS = (1, 3, 4)
FAILURE_HINT = (
    "run `appliance doctor`; check the NPU driver (dmesg | grep -i rknpu) and that /usr/lib/librknnrt.so "
    "is the release of rknn-toolkit-lite2 and of the toolkit that converted the model"
)


@dataclass(frozen=True)
class NPUSettings:
    """The [backend] keys the rknn backend uses, and where platform facts are read from."""

    core_policy: str = "auto"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    platform: ProbeSources = field(default_factory=ProbeSources)
    deadline: Deadline = field(default_factory=Deadline)
    cpu_cores: int | None = None  # None: os.cpu_count()


@dataclass(frozen=True)
class Slot:
    """One context to open: its label and the core mask passed to init_runtime."""

    label: str
    core_mask: int


@dataclass(frozen=True)
class NPUModel:
    """A .rknn file, its float twin, the twin's tensors and what the manifest declares."""

    path: Path
    twin: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]  # the twin's, as LiteRT has them (maybe quantised)
    threads: int = 1
    declared: Declared = field(default_factory=Declared)

    @classmethod
    def of(cls, path: Path, threads: int = 1) -> NPUModel:
        twin = twin_of(path)
        inputs, outputs = read_specs(twin)
        return cls(path, twin, inputs, outputs, threads, declared(path))

    @property
    def npu_inputs(self) -> tuple[TensorSpec, ...]:
        """What the pipeline feeds: raw uint8 when mean/std are folded into the .rknn, else the twin's."""
        if self.declared.folded is None:
            return self.inputs
        return tuple(dataclasses.replace(s, dtype="uint8", scale=0.0, zero_point=0) for s in self.inputs)

    def cpu_inputs(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The same frame for the float twin (normalised on the CPU only when the NPU is not there)."""
        folded = self.declared.folded
        if folded is None:
            return list(inputs)
        return [folded.normalise(t, self.declared.layout or "nhwc") for t in inputs]

    @property
    def float_outputs(self) -> tuple[TensorSpec, ...]:
        return float_specs(self.outputs)


def plan_slots(policy: str, cores: int, contexts: int) -> list[Slot]:
    """The contexts a core policy asks for: `contexts` of them, labelled like 'rknn:core1'."""
    count = max(contexts, 1)
    if policy == "per-core":
        per = max(cores, 1)
        masks = [(1 << (i % per)) if cores > 1 else NPU_CORE_AUTO for i in range(count)]
        bases = [f"rknn:core{i % per}" for i in range(count)]
        repeat = [i // per for i in range(count)]
    else:
        mask = NPU_CORE_AUTO if policy == "auto" else CORE_MASKS[policy]
        if mask >= 1 << max(cores, 1) or (mask and cores <= 1):
            raise BackendUnavailable(
                f"backend.core_policy = {policy!r} needs NPU cores this SoC does not have "
                f"({cores} core(s)): use auto or per-core"
            )
        masks, bases, repeat = [mask] * count, [f"rknn:{policy}"] * count, list(range(count))
    return [
        Slot(base if k == 0 else f"{base}#{k}", mask)
        for base, mask, k in zip(bases, masks, repeat, strict=True)
    ]


def _guess_format(spec: TensorSpec) -> str:
    shape = spec.shape
    if len(shape) == 4 and shape[1] in CHANNEL_COUNTS and shape[3] not in CHANNEL_COUNTS:
        return "nchw"
    return "nhwc"


def float_specs(outputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    """What the backend hands on: every output float32 (dequantised here when the NPU gives raw integers)."""
    return tuple(dataclasses.replace(s, dtype="float32", scale=0.0, zero_point=0) for s in outputs)


class RKNNContext:
    """One RKNNLite runtime on one core mask. Not thread-safe: its runner thread owns it."""

    def __init__(self, runtime: Any, label: str, model: NPUModel) -> None:
        self._rknn = runtime
        self._label = label
        self._inputs = model.npu_inputs
        self._outputs = model.float_outputs
        self._convert = OutputConverter(label, model.outputs, model.declared.outputs)
        layout = model.declared.layout
        formats = [layout or _guess_format(s) for s in model.inputs]
        self._format: str | list[str] = formats[0] if len(set(formats)) == 1 else formats
        self._pass_through = [1] * len(model.inputs) if model.declared.pass_through else None

    @property
    def label(self) -> str:
        return self._label

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        # the arrays go as they are: already in the layout and dtype the model expects
        extra = {"inputs_pass_through": self._pass_through} if self._pass_through else {}
        try:
            outputs = self._rknn.inference(inputs=list(inputs), data_format=self._format, **extra)
        except Exception as err:  # rknn_lite.py never raises; a binding that does is translated, once
            raise InferenceFailed(f"{self._label}: inference raised {type(err).__name__}: {err}") from err
        if outputs is None:
            raise InferenceFailed(f"{self._label}: inference returned None (the NPU runtime logged why)")
        return self._convert(outputs)

    def close(self) -> None:
        runtime, self._rknn = self._rknn, None
        if runtime is not None:
            try:
                runtime.release()
            except Exception as err:  # releasing a broken runtime must not stop the fallback
                logger.debug("%s: release failed: %s", self._label, err)


def vendor_class() -> type[Any]:
    try:
        from rknnlite.api import RKNNLite  # noqa: PLC0415 optional vendor module, only on Rockchip boards
    except (ImportError, OSError) as err:
        raise BackendUnavailable(f"rknnlite is not importable ({err}): {LITE_FIX}") from err
    return RKNNLite  # type: ignore[no-any-return]


def twin_of(model: Path) -> Path:
    twin = model.with_suffix(".tflite")
    if not twin.is_file():
        raise ModelRejected(
            f"{model.name} has no float twin {twin.name} beside it: the rknn backend reads tensor shapes "
            "from it and falls back to it on the CPU; convert with `appliance models convert`"
        )
    return twin


def open_runtime(cls: type[Any], model: NPUModel, slot: Slot) -> RKNNContext:
    """load_rknn + init_runtime for one slot; -1 from either becomes an error with its fix.

    load_rknn only reads the file (rknn_lite.py); a damaged or too new model fails in init_runtime.
    """
    try:
        runtime = cls(verbose=False)
        loaded = runtime.load_rknn(str(model.path))
        started = runtime.init_runtime(core_mask=slot.core_mask) if loaded == 0 else None
    except Exception as err:  # the vendor raises assorted types; translated here, once
        raise BackendUnavailable(f"{slot.label}: RKNNLite raised {type(err).__name__}: {err}") from err
    if loaded != 0:
        runtime.release()
        raise ModelRejected(
            f"load_rknn({model.path.name}) returned {loaded}: the file cannot be read; "
            "convert it again with `appliance models convert`"
        )
    if started != 0:
        runtime.release()
        mask = MASK_NAMES.get(slot.core_mask, str(slot.core_mask))
        raise BackendUnavailable(
            f"init_runtime(core_mask={mask}) returned {started} on {slot.label}: the NPU runtime cannot "
            "start the model. Check that the RKNPU driver is loaded and its device node is accessible "
            "(appliance doctor), that /usr/lib/librknnrt.so is not older than the toolkit that converted "
            "the model (the vendor log then says 'Invalid RKNN model version'), that the file is not "
            "damaged ('Invalid RKNN format'), and that it was converted for this SoC (--target)"
        )
    return RKNNContext(runtime, slot.label, model)


class RKNNBackend:
    name = "rknn"
    model_suffix = ".rknn"

    def __init__(self, settings: NPUSettings | None = None, fallback: Backend | None = None) -> None:
        self.settings = settings or NPUSettings()
        self._fallback = fallback or LiteRTBackend()
        self._report: PlatformReport | None = None
        self._groups: list[NPUGroup] = []
        self._lock = threading.Lock()

    def platform(self) -> PlatformReport:
        if self._report is None:
            self._report = probe_platform(self.settings.platform)
        return self._report

    def probe(self) -> str | None:
        try:
            vendor_class()
        except BackendUnavailable as err:
            return str(err)
        return self.platform().rknn_blocker()

    def open(self, model: Path, options: BackendOptions) -> list[Context]:
        cls = vendor_class()
        spec = NPUModel.of(model, options.threads)
        slots = plan_slots(self.settings.core_policy, self.platform().npu_cores, options.contexts)
        runners = [
            NPURunner(
                slot.label,
                functools.partial(open_runtime, cls, spec, slot),
                self.settings.retry,
                FAILURE_HINT,
            )
            for slot in slots
        ]
        size = PoolSize.for_machine(len(slots), spec.threads, self.settings.cpu_cores)
        cpu = CPUPool(lambda threads: self._fallback.open(spec.twin, BackendOptions(threads, 1))[0], size)
        group = NPUGroup(runners, cpu, (spec.npu_inputs, spec.float_outputs), self.settings.deadline)
        group.cpu_inputs = spec.cpu_inputs
        group.on_close = self._forget
        with self._lock:
            self._groups.append(group)
        logger.info("%s opened on %s", model.name, ", ".join(s.label for s in slots))
        return [FailoverContext(group, i) for i in range(len(slots))]

    def _forget(self, group: NPUGroup) -> None:
        with self._lock:
            if group in self._groups:
                self._groups.remove(group)

    def problems(self) -> list[str]:
        """Why the NPU is not fully working right now, in words (for /health); empty when it is."""
        with self._lock:
            groups = list(self._groups)
        return [problem for group in groups for problem in group.problems()]
