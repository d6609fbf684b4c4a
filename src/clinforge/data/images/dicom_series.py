"""DICOM series to volumes: grouping, geometric slice order, HU, multi-frame, spacing from positions.

Rules (each one a trap real exports fall into):

* files are grouped by **SeriesInstanceUID** (one folder often holds several series: localiser, two
  reconstructions...); files that are not DICOM are skipped and counted, a DICOM file whose pixels cannot be decoded
  is an error naming the file;
* slices are sorted by **ImagePositionPatient projected on the slice normal** (row cosine x column cosine of
  ImageOrientationPatient), never by file name or InstanceNumber (both are arbitrary in exports; InstanceNumber
  restarts per acquisition). This is correct for oblique acquisitions too, where sorting by the z coordinate is not;
* the slice spacing ``dz`` is the median gap between consecutive projected positions (SliceThickness is the
  thickness of the reconstructed slab, not the distance between slices: overlapping reconstructions differ);
  non-uniform gaps (a missing slice) are recorded in ``notes["slice_gaps"]``; two slices at the same position are an
  error (a mixed series);
* stored values go through RescaleSlope/RescaleIntercept per slice (to HU for CT) as float32; 8- and 16-bit,
  signed and unsigned data all arrive this way;
* MONOCHROME1 (low value = white) sets ``Volume.invert`` so display conversion inverts it; values stay HU;
* an enhanced multi-frame file (NumberOfFrames > 1) is one series: per-frame positions and orientation come from
  the (Per-frame / Shared) Functional Groups, and frames are sorted like slices; a multi-frame file without
  positions keeps frame order and takes ``dz`` from SpacingBetweenSlices (recorded in notes);
* the header goes through :func:`clinforge.data.images.dicom_phi.deidentify_header` on import.

Example:
    >>> vols = read_dicom_series("tests/fixtures/no-such-folder")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from clinforge.core.errors import DataError
from clinforge.data.images.dicom_phi import deidentify_header
from clinforge.data.images.volumes import Volume

GAP_TOLERANCE = 0.01  # relative deviation of a slice gap from the median that counts as non-uniform


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError("no such file or folder", file=str(path))
    return sorted(p for p in path.rglob("*") if p.is_file())


def _series_id(uid: str | None, fallback: str) -> str:
    # the UID is not PHI by itself but links to the source PACS: keep a short one-way digest
    return hashlib.sha256((uid or fallback).encode()).hexdigest()[:16]


def scan_dicom(path: str | os.PathLike) -> tuple[dict[str, list[tuple[Path, Any]]], dict[str, int]]:
    """Group the DICOM files under ``path`` by SeriesInstanceUID (headers only, no pixels).

    Returns ``({uid: [(file, header dataset), ...]}, {"not_dicom": n})``.

    Example:
        >>> scan_dicom("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.errors.DataError: /nonexistent: no such file or folder
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    groups: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    skipped = {"not_dicom": 0}
    for file in _files(Path(path)):
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except InvalidDicomError:
            skipped["not_dicom"] += 1
            continue
        except Exception as exc:  # a truncated or garbled header: name the file, not a pydicom traceback
            raise DataError(f"unreadable DICOM header ({type(exc).__name__}: {exc})", file=str(file)) from None
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        groups[uid or f"(no SeriesInstanceUID) {file}"].append((file, ds))
    return dict(groups), skipped


def _normal(orientation: Any, file: Path, field: str = "ImageOrientationPatient") -> np.ndarray:
    try:
        cosines = np.asarray([float(v) for v in orientation], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("not six numbers", file=str(file), field=field) from None
    if cosines.shape != (6,):
        raise DataError(f"needs 6 direction cosines, has {cosines.size}", file=str(file), field=field)
    normal = np.cross(cosines[:3], cosines[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise DataError("row and column directions are parallel", file=str(file), field=field)
    return normal / norm


def _pixels(ds: Any, file: Path) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except Exception as exc:  # missing, truncated or undecodable pixel data
        raise DataError(f"pixel data cannot be decoded ({type(exc).__name__}: {exc})", file=str(file),
                        field="PixelData") from None
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise DataError("colour DICOM (SamplesPerPixel > 1) is not a grey-level volume; read it as an image",
                        file=str(file), field="SamplesPerPixel")
    return arr


def _rescale(arr: np.ndarray, item: Any) -> np.ndarray:
    slope = float(item.get("RescaleSlope", 1) or 1) if item is not None else 1.0
    intercept = float(item.get("RescaleIntercept", 0) or 0) if item is not None else 0.0
    return arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _pixel_spacing(value: Any, file: Path) -> tuple[float, float]:
    if value is None:
        return 1.0, 1.0
    try:
        dy, dx = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError("PixelSpacing must be two numbers", file=str(file), field="PixelSpacing") from None
    return dy, dx


def _stack(slices: list[tuple[float, np.ndarray, str]], where: str) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Sort (position, pixels, name) along the normal; return the volume, dz and notes."""
    slices.sort(key=lambda s: s[0])
    positions = np.asarray([s[0] for s in slices])
    notes: dict[str, Any] = {}
    if len(slices) == 1:
        return slices[0][1][None].copy(), 1.0, {"single_slice": True}
    gaps = np.diff(positions)
    if np.any(gaps < 1e-4):
        dup = int(np.argmin(gaps))
        raise DataError(f"two slices at the same position along the slice normal ({slices[dup][2]} and "
                        f"{slices[dup + 1][2]}): the series mixes acquisitions", file=where,
                        field="ImagePositionPatient")
    dz = float(np.median(gaps))
    if np.any(np.abs(gaps - dz) > GAP_TOLERANCE * dz):
        notes["slice_gaps"] = sorted({round(float(g), 3) for g in gaps})
    shapes = {s[1].shape for s in slices}
    if len(shapes) != 1:
        raise DataError(f"slices of one series have different sizes {sorted(shapes)}", file=where, field="Rows")
    return np.stack([s[1] for s in slices]).astype(np.float32), dz, notes


def _functional(ds: Any, frame: int, group: str, item: str) -> Any:
    """A per-frame functional-group item, else the shared one, else None."""
    for seq_name, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(seq_name)
        if seq is not None and len(seq) > index and group in seq[index]:
            inner = seq[index].get(group)
            if inner is not None and len(inner) and item in inner[0]:
                return inner[0]
    return None


def _multiframe(file: Path, ds: Any) -> tuple[np.ndarray, tuple[float, float, float], dict[str, Any]]:
    arr = _pixels(ds, file)
    frames = int(ds.NumberOfFrames)
    if arr.ndim == 2:
        arr = arr[None]
    notes: dict[str, Any] = {"multi_frame": frames}
    measures = _functional(ds, 0, "PixelMeasuresSequence", "PixelSpacing")
    dy, dx = _pixel_spacing(measures.PixelSpacing if measures is not None else ds.get("PixelSpacing"), file)
    slices = []
    for f in range(frames):
        plane = _functional(ds, f, "PlanePositionSequence", "ImagePositionPatient")
        orient = _functional(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient")
        transform = _functional(ds, f, "PixelValueTransformationSequence", "RescaleSlope")
        values = _rescale(arr[f], transform if transform is not None else ds)
        if plane is None or (orient is None and "ImageOrientationPatient" not in ds):
            slices = []
            break
        normal = _normal(orient.ImageOrientationPatient if orient is not None else ds.ImageOrientationPatient, file)
        slices.append((float(np.dot(normal, [float(v) for v in plane.ImagePositionPatient])), values,
                       f"frame {f + 1}"))
    if slices:
        volume, dz, more = _stack(slices, str(file))
        notes.update(more)
        return volume, (dz, dy, dx), notes
    # no positions: frame order is all there is (e.g. nuclear medicine, ultrasound cine)
    notes["order"] = "frame order (no per-frame ImagePositionPatient)"
    spacing = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    volume = np.stack([_rescale(arr[f], ds) for f in range(frames)]).astype(np.float32)
    return volume, (float(spacing) if spacing else 1.0, dy, dx), notes


def _series_volume(uid: str, members: list[tuple[Path, Any]], deidentifier: Any) -> Volume:
    import pydicom

    first_file, first = members[0]
    header, removed = deidentify_header(first, deidentifier)
    modality = str(first.get("Modality", "") or "") or None
    invert = str(first.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    multi = [(f, d) for f, d in members if int(d.get("NumberOfFrames", 1) or 1) > 1]
    files = [str(f) for f, _ in members]
    if multi:
        if len(members) != 1:
            raise DataError(f"series mixes {len(multi)} multi-frame file(s) with {len(members) - len(multi)} other "
                            "file(s); read each multi-frame file on its own", file=str(multi[0][0]),
                            field="NumberOfFrames")
        ds = pydicom.dcmread(first_file)
        array, spacing, notes = _multiframe(first_file, ds)
    else:
        normal = None
        slices = []
        orientations = set()
        for file, head in members:
            if "ImagePositionPatient" not in head or "ImageOrientationPatient" not in head:
                missing = "ImagePositionPatient" if "ImagePositionPatient" not in head else "ImageOrientationPatient"
                if len(members) == 1:  # a single 2D image (radiograph) needs no geometry
                    ds = pydicom.dcmread(file)
                    slices.append((0.0, _rescale(_pixels(ds, file), ds), str(file)))
                    break
                raise DataError("missing: slices cannot be ordered without it", file=str(file), field=missing)
            orientations.add(tuple(round(float(v), 4) for v in head.ImageOrientationPatient))
            if normal is None:
                normal = _normal(head.ImageOrientationPatient, file)
            ds = pydicom.dcmread(file)
            position = [float(v) for v in head.ImagePositionPatient]
            slices.append((float(np.dot(normal, position)), _rescale(_pixels(ds, file), ds), str(file)))
        if len(orientations) > 1:
            raise DataError(f"{len(orientations)} different ImageOrientationPatient values in one series",
                            file=str(members[0][0].parent), field="ImageOrientationPatient")
        # keep the file list in slice order (the order the volume's D axis has)
        order = {name: i for i, (_, _, name) in enumerate(sorted(slices, key=lambda s: s[0]))}
        files = sorted(files, key=lambda f: order.get(f, 0))
        array, dz, notes = _stack(slices, str(first_file.parent))
        dy, dx = _pixel_spacing(first.get("PixelSpacing"), first_file)
        spacing = (dz, dy, dx)
    return Volume(array=np.ascontiguousarray(array), spacing=spacing, modality=modality,
                  source=str(Path(files[0]).parent if len(files) > 1 else files[0]), series_id=_series_id(uid, files[0]),
                  files=files, invert=invert, header=header, phi_removed=removed, notes=notes)


def read_dicom_series(path: str | os.PathLike, *, deidentifier: Any = None) -> list[Volume]:
    """Every DICOM series under ``path`` (a file or a folder, searched recursively) as a :class:`Volume`.

    Series come in order of their first file's path; ``notes["not_dicom_files"]`` of the first volume counts the
    non-DICOM files skipped. No DICOM at all is an error naming the path.

    Example:
        >>> vols = read_dicom_series("scans/ct-chest")  # doctest: +SKIP
        >>> vols[0].shape, vols[0].spacing, vols[0].modality  # doctest: +SKIP
        ((120, 512, 512), (2.5, 0.703, 0.703), 'CT')
    """
    groups, skipped = scan_dicom(path)
    if not groups:
        raise DataError(f"no DICOM files found ({skipped['not_dicom']} other files)", file=str(path))
    volumes = [_series_volume(uid, members, deidentifier)
               for uid, members in sorted(groups.items(), key=lambda kv: str(kv[1][0][0]))]
    if skipped["not_dicom"]:
        volumes[0].notes["not_dicom_files"] = skipped["not_dicom"]
    return volumes
