"""Resampling a volume to a target voxel spacing and/or size (trilinear by default).

Grid convention: voxel centres, as ITK/SimpleITK and ``torch.nn.functional.interpolate(align_corners=False)``: the
output voxel ``j`` along an axis sits at input coordinate ``(j + 0.5) * new_spacing / old_spacing - 0.5``, so the
volume's physical extent (shape x spacing) is kept when only the spacing changes, and the new spacing is
``old_spacing * old_size / new_size`` when a size is asked for. Samples outside the input take the nearest edge
value (``mode="nearest"``), never zeros (a zero is -0 HU water in CT, a real tissue value).

Example:
    >>> from clinforge.data.images.volumes import Volume
    >>> v = Volume(np.arange(8, dtype=np.float32).reshape(2, 2, 2), (2.0, 1.0, 1.0), "CT", "x")
    >>> resample_volume(v, spacing=(1.0, 1.0, 1.0)).shape
    (4, 2, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from clinforge.core.errors import ConfigError
from clinforge.data.images.volumes import Volume


def target_grid(shape: Sequence[int], spacing: Sequence[float], *, new_spacing: Sequence[float] | None = None,
                size: Sequence[int] | None = None) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The output shape and spacing for a target spacing (shape = round(extent / spacing)) or size (wins).

    Example:
        >>> target_grid((10, 100, 100), (5.0, 0.5, 0.5), new_spacing=(1.0, 1.0, 1.0))
        ((50, 50, 50), (1.0, 1.0, 1.0))
        >>> target_grid((10, 100, 100), (5.0, 0.5, 0.5), size=(25, 64, 64))
        ((25, 64, 64), (2.0, 0.78125, 0.78125))
    """
    if new_spacing is None and size is None:
        raise ConfigError("resampling needs a target spacing or size", key="spacing")
    if size is not None:
        if len(size) != 3 or any(int(s) < 1 for s in size):
            raise ConfigError(f"size must be three positive integers (D, H, W), got {list(size)}", key="size")
        out = tuple(int(s) for s in size)
        return out, tuple(float(sp) * n / m for sp, n, m in zip(spacing, shape, out, strict=True))  # type: ignore[return-value]
    assert new_spacing is not None
    if len(new_spacing) != 3 or any(float(s) <= 0 for s in new_spacing):
        raise ConfigError(f"spacing must be three positive numbers (dz, dy, dx), got {list(new_spacing)}",
                          key="spacing")
    out = tuple(max(1, int(round(n * sp / float(ns)))) for n, sp, ns in zip(shape, spacing, new_spacing, strict=True))
    return out, tuple(float(s) for s in new_spacing)  # type: ignore[return-value]


def resample_volume(volume: Volume, *, spacing: Sequence[float] | None = None, size: Sequence[int] | None = None,
                    order: int = 1) -> Volume:
    """A new :class:`Volume` on the target grid (``order`` 1: trilinear, 0: nearest for label maps, 3: cubic).

    Example:
        >>> v = Volume(np.zeros((4, 8, 8), np.float32), (1.0, 1.0, 1.0), None, "x")
        >>> r = resample_volume(v, size=(2, 4, 4)); r.shape, r.spacing
        ((2, 4, 4), (2.0, 2.0, 2.0))
    """
    from scipy.ndimage import map_coordinates

    shape, new_spacing = target_grid(volume.shape, volume.spacing, new_spacing=spacing, size=size)
    axes = [(np.arange(m) + 0.5) * ns / os_ - 0.5
            for m, ns, os_ in zip(shape, new_spacing, volume.spacing, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij")
    data = map_coordinates(volume.array.astype(np.float32), grid, order=order, mode="nearest")
    notes = {**volume.notes, "resampled_from": {"shape": list(volume.shape), "spacing": list(volume.spacing)}}
    return replace(volume, array=np.ascontiguousarray(data, dtype=np.float32), spacing=new_spacing, notes=notes)
