"""SSD anchors, as MediaPipe's SsdAnchorsCalculator generates them (BlazeFace, palm, pose detectors)."""

from __future__ import annotations

import math

import numpy as np

from appliance.models.manifest import AnchorSpec


def _scale(spec: AnchorSpec, index: int, count: int) -> float:
    if count == 1:
        return (spec.min_scale + spec.max_scale) * 0.5
    return spec.min_scale + (spec.max_scale - spec.min_scale) * index / (count - 1)


def _layer_shapes(spec: AnchorSpec, first: int) -> tuple[list[float], list[float], int]:
    """Anchor heights and widths for the run of layers sharing layer `first`'s stride."""
    ratios: list[float] = []
    scales: list[float] = []
    last = first
    strides = spec.strides
    while last < len(strides) and strides[last] == strides[first]:
        scale = _scale(spec, last, len(strides))
        for ratio in spec.aspect_ratios:
            ratios.append(ratio)
            scales.append(scale)
        if spec.interpolated_scale_aspect_ratio > 0:
            upper = 1.0 if last == len(strides) - 1 else _scale(spec, last + 1, len(strides))
            scales.append(math.sqrt(scale * upper))
            ratios.append(spec.interpolated_scale_aspect_ratio)
        last += 1
    heights = [s / math.sqrt(r) for s, r in zip(scales, ratios, strict=True)]
    widths = [s * math.sqrt(r) for s, r in zip(scales, ratios, strict=True)]
    return heights, widths, last


def ssd_anchors(spec: AnchorSpec, input_h: int, input_w: int) -> np.ndarray:
    """Anchors as an (N, 4) float32 array of x_center, y_center, width, height (normalised)."""
    rows: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < spec.num_layers:
        heights, widths, last = _layer_shapes(spec, layer)
        stride = spec.strides[layer]
        fm_h, fm_w = math.ceil(input_h / stride), math.ceil(input_w / stride)
        for y in range(fm_h):
            for x in range(fm_w):
                cx, cy = (x + spec.offset) / fm_w, (y + spec.offset) / fm_h
                for h, w in zip(heights, widths, strict=True):
                    rows.append((cx, cy, 1.0, 1.0) if spec.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.array(rows, np.float32)
