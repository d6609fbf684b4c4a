"""What ``clinforge data inspect PATH --format dicom|nifti`` reports: one entry per DICOM series or NIfTI volume.

Example:
    >>> inspect_volumes("/nonexistent", "nifti")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clinforge.core.errors.DataError: /nonexistent: no NIfTI file (.nii, .nii.gz) found
"""

from __future__ import annotations

import os
from typing import Any

from clinforge.core.errors import ConfigError

VOLUME_FORMATS = ("dicom", "nifti")


def inspect_volumes(path: str | os.PathLike, fmt: str, *, limit: int | None = None) -> dict[str, Any]:
    """``{"path", "format", "count", "volumes": [Volume.summary(), ...]}`` for every series/volume under ``path``.

    Header values are de-identified on import; the summary lists only the names of removed PHI fields.

    Example:
        >>> inspect_volumes("x", "png")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: format: ... dicom, nifti
    """
    if fmt == "dicom":
        from clinforge.data.images.dicom_series import read_dicom_series

        volumes = read_dicom_series(path)
    elif fmt == "nifti":
        from clinforge.data.images.nifti_volumes import nifti_files, read_nifti

        volumes = [read_nifti(f) for f in nifti_files(path)[:limit]]
    else:
        raise ConfigError(f"volume format {fmt!r} unknown; valid: {', '.join(VOLUME_FORMATS)}", key="format")
    volumes = volumes[:limit] if limit is not None else volumes
    return {"path": str(path), "format": fmt, "count": len(volumes), "volumes": [v.summary() for v in volumes]}
