"""The one preprocessing function shared by extraction, training and inference.

Center crop to a square whose side is the shorter side, then resize. Output stays RGB
uint8: normalisation belongs to the model's weights (see ``vidhash.models``), so the
same keyframe JPEG serves every backbone.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_SIZE = 224


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, side, side) of the largest centred square in a width x height frame."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def center_crop_resize(frame: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Center-crop an HxWx3 RGB uint8 frame to a square and resize it to ``size`` x ``size``.

    Area interpolation when shrinking (no aliasing), bilinear when enlarging (CIFAR's
    32x32 images go up to 224).
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB frame, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {frame.dtype}")
    height, width = frame.shape[:2]
    left, top, side, _ = center_crop_box(width, height)
    square = frame[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp)
