"""NIfTI volumes (``.nii``, ``.nii.gz``) through nibabel, reoriented to canonical RAS+ and laid out D x H x W.

nibabel's array is indexed ``(i, j, k)`` along the voxel axes of the file's affine, which can point anywhere (LPS
scanners, flipped or permuted exports). ``nibabel.as_closest_canonical`` reorders and flips the axes so that i runs
toward Right, j toward Anterior, k toward Superior (the affine then has a positive diagonal); clinforge then
transposes to ``(k, j, i)`` = D x H x W and makes the array C-contiguous (``torch.from_numpy`` of a transposed view
is a silent trap). Spacing is the header's zooms after reorientation, reordered to ``(dz, dy, dx)``. Values are
``get_fdata`` (scl_slope/scl_inter applied) as float32. A 4D file is an error unless ``volume_index`` picks one.

Example:
    >>> vol = read_nifti("brain.nii.gz")  # doctest: +SKIP
    >>> vol.shape, vol.spacing  # doctest: +SKIP
    ((155, 240, 240), (1.0, 1.0, 1.0))
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clinforge.core.errors import DataError
from clinforge.data.images.volumes import Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def nifti_files(path: str | os.PathLike) -> list[Path]:
    """The NIfTI files of a file or folder (recursively, sorted); none is an error naming the path.

    Example:
        >>> nifti_files("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.errors.DataError: /nonexistent: no NIfTI file (.nii, .nii.gz) found
    """
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.name.endswith(NIFTI_SUFFIXES)) \
        if p.is_dir() else []
    if not files:
        raise DataError("no NIfTI file (.nii, .nii.gz) found", file=str(p))
    return files


def read_nifti(path: str | os.PathLike, *, volume_index: int | None = None) -> Volume:
    """One NIfTI file as a canonical-RAS D x H x W :class:`Volume` (see the module docstring).

    Example:
        >>> import tempfile, pathlib, nibabel as nib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "v.nii.gz"
        >>> nib.save(nib.Nifti1Image(np.zeros((4, 3, 2), np.float32), np.diag([0.5, 0.8, 2.0, 1.0])), f)
        >>> v = read_nifti(f); v.shape, v.spacing
        ((2, 3, 4), (2.0, 0.8, 0.5))
    """
    import nibabel as nib

    file = Path(path)
    try:
        img = nib.load(str(file))
        canonical = nib.as_closest_canonical(img)
        data = np.asarray(canonical.get_fdata(dtype=np.float32))
    except FileNotFoundError:
        raise DataError("no such file", file=str(file)) from None
    except Exception as exc:  # truncated gzip, bad header, wrong magic
        raise DataError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", file=str(file)) from None
    notes = {}
    if data.ndim == 4:
        if volume_index is None:
            raise DataError(f"4D NIfTI with {data.shape[3]} volumes; pass volume_index to pick one",
                            file=str(file), field="dim")
        if not 0 <= volume_index < data.shape[3]:
            raise DataError(f"volume_index {volume_index} out of range 0..{data.shape[3] - 1}", file=str(file),
                            field="dim")
        data = data[..., volume_index]
        notes["volume_index"] = volume_index
    elif data.ndim == 2:
        data = data[..., None]
    elif data.ndim != 3:
        raise DataError(f"expected a 3D volume, got shape {data.shape}", file=str(file), field="dim")
    zooms = [round(float(z), 6) for z in canonical.header.get_zooms()[:3]]  # float32 in the header
    while len(zooms) < 3:
        zooms.append(1.0)
    if any(z <= 0 for z in zooms):
        raise DataError(f"non-positive voxel size {zooms}", file=str(file), field="pixdim")
    code = "".join(nib.aff2axcodes(img.affine))
    if code != "RAS":
        notes["reoriented_from"] = code
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)), dtype=np.float32)
    return Volume(array=array, spacing=(zooms[2], zooms[1], zooms[0]), modality=None, source=str(file),
                  files=[str(file)], notes=notes)
