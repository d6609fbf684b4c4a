"""The in-memory form of a medical image volume shared by the DICOM and NIfTI loaders and the resampler.

Axis convention (one for every source, so models never see a transposed volume): ``array`` is ``D x H x W`` (slices,
rows, columns) and ``spacing`` is ``(dz, dy, dx)`` in millimetres in the same order. For DICOM, slices are ordered
along the slice normal (row cosine x column cosine of ImageOrientationPatient) and rows/columns are as stored; for
NIfTI the volume is first reoriented to canonical RAS+ so that W runs toward Right, H toward Anterior, D toward
Superior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Volume:
    """A D x H x W image volume with its voxel spacing and provenance.

    Attributes:
        array: ``float32`` values; for CT after RescaleSlope/Intercept, i.e. Hounsfield units.
        spacing: ``(dz, dy, dx)`` in mm (dz from the slice positions, never from SliceThickness, for DICOM series).
        modality: DICOM Modality (``CT``, ``MR``, ``CR``...) or ``None`` (NIfTI has no such field).
        source: the file or folder read.
        series_id: a SHA-256 prefix of the SeriesInstanceUID (the UID itself can link back to the patient).
        files: the files the volume came from, in slice order.
        invert: True for MONOCHROME1 data (low values are displayed bright); :func:`to_uint8` honours it.
        header: de-identified header fields kept (keyword -> value); never holds a removed PHI value.
        phi_removed: header keywords removed or rewritten by the de-identification on import (names only).
        notes: facts a user should know (non-uniform slice gaps, multi-frame, ...).

    Example:
        >>> v = Volume(np.zeros((2, 3, 4), dtype=np.float32), (2.5, 0.7, 0.7), "CT", "x.nii.gz")
        >>> v.shape, v.spacing
        ((2, 3, 4), (2.5, 0.7, 0.7))
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    modality: str | None
    source: str
    series_id: str | None = None
    files: list[str] = field(default_factory=list)
    invert: bool = False
    header: dict[str, Any] = field(default_factory=dict)
    phi_removed: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(D, H, W)``."""
        d, h, w = self.array.shape
        return int(d), int(h), int(w)

    def summary(self) -> dict[str, Any]:
        """What ``clinforge data inspect`` prints: shape, spacing, modality, files, PHI fields removed, notes.

        Example:
            >>> Volume(np.zeros((1, 2, 2), dtype=np.float32), (1.0, 1.0, 1.0), None, "a.nii").summary()["shape"]
            [1, 2, 2]
        """
        return {"source": self.source, "series_id": self.series_id, "modality": self.modality,
                "shape": list(self.shape), "spacing": [round(float(s), 4) for s in self.spacing],
                "dtype": str(self.array.dtype), "files": len(self.files) or 1,
                "value_range": [float(self.array.min()), float(self.array.max())] if self.array.size else None,
                "invert": self.invert, "phi_removed": list(self.phi_removed), "notes": dict(self.notes)}
