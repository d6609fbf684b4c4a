"""Writes real DICOM files with pydicom for the imaging tests (CT series, multi-frame, radiographs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PHI = {"PatientName": "Quenvaro^Dastrelik", "PatientID": "MRN-4456781", "PatientBirthDate": "19400102",
       "InstitutionName": "Saint Elsewhere Hospital", "StudyDate": "20240317", "ReferringPhysicianName": "Graves^Ann",
       "AccessionNumber": "ACC99812"}


def base_dataset(rows: int, cols: int, *, modality: str = "CT", signed: bool = True, bits: int = 16,
                 photometric: str = "MONOCHROME2", series_uid: str | None = None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = modality
    for key, value in PHI.items():
        setattr(ds, key, value)
    ds.StudyDescription = "CT chest for Quenvaro Dastrelik"
    ds.PatientSex = "F"
    ds.PatientAge = "093Y"
    ds.add_new(0x00091010, "LO", "private vendor note")
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelSpacing = [0.7, 0.8]
    return ds


def write_series(folder: Path, volume: np.ndarray, *, orientation=(1, 0, 0, 0, 1, 0), origin=(0.0, 0.0, 0.0),
                 dz: float = 2.5, slope: float = 1.0, intercept: float = -1024.0, photometric: str = "MONOCHROME2",
                 order: list[int] | None = None, names: list[str] | None = None) -> str:
    """Write ``volume`` (D x H x W stored values) as one file per slice; slice k sits at origin + k*dz*normal.

    ``order`` permutes which slice gets which file name / InstanceNumber (so neither follows the geometry).
    Returns the SeriesInstanceUID.
    """
    folder.mkdir(parents=True, exist_ok=True)
    d, h, w = volume.shape
    cos = np.asarray(orientation, dtype=float)
    normal = np.cross(cos[:3], cos[3:])
    uid = generate_uid()
    order = order or list(range(d))
    for k in range(d):
        ds = base_dataset(h, w, photometric=photometric, series_uid=uid, signed=volume.dtype == np.int16)
        ds.ImageOrientationPatient = [float(c) for c in cos]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * dz * normal]
        ds.InstanceNumber = order[k] + 1
        ds.SliceThickness = 5.0  # deliberately not the gap between slices
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = volume[k].tobytes()
        name = names[k] if names else f"IM{order[k]:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
    return uid


def write_multiframe(file: Path, volume: np.ndarray, *, dz: float = 3.0, shuffle: list[int] | None = None) -> None:
    """An enhanced multi-frame file; ``shuffle[f]`` is the geometric slice stored as frame f."""
    d, h, w = volume.shape
    shuffle = shuffle or list(range(d))
    ds = base_dataset(h, w)
    ds.NumberOfFrames = d
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.5]
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2.0, -1000.0, "HU"
    shared.PlaneOrientationSequence = [orient]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for f in range(d):
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, float(shuffle[f] * dz)]
        item.PlanePositionSequence = [pos]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.stack([volume[shuffle[f]] for f in range(d)]).tobytes()
    file.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(file, enforce_file_format=True)
