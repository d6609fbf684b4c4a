"""DICOM series and NIfTI volumes written by the tests themselves: geometry, HU, windows, PHI, resampling, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest

from _dicom_writer import PHI, write_multiframe, write_series
from clinforge.core.errors import ConfigError, DataError
from clinforge.data.images.dicom_series import read_dicom_series
from clinforge.data.images.image_files import load_image
from clinforge.data.images.nifti_volumes import read_nifti
from clinforge.data.images.volume_resampling import resample_volume
from clinforge.data.images.volumes import Volume
from clinforge.data.images.windowing import apply_window, to_uint8


def _ramp(d: int = 6, h: int = 5, w: int = 4) -> np.ndarray:
    # slice k holds value 100*k + small in-plane pattern, so slice order is visible in every voxel
    vol = np.zeros((d, h, w), dtype=np.int16)
    for k in range(d):
        vol[k] = 100 * k + np.arange(h * w, dtype=np.int16).reshape(h, w)
    return vol


def test_series_sorted_by_position_not_name_or_instance_number(tmp_path):
    vol = _ramp()
    perm = [3, 0, 5, 1, 4, 2]  # file names and InstanceNumbers follow this, not the geometry
    write_series(tmp_path / "s", vol, order=perm)
    (tmp_path / "s" / "README.txt").write_text("not dicom")
    [v] = read_dicom_series(tmp_path / "s")
    assert v.shape == (6, 5, 4)
    np.testing.assert_array_equal(v.array, vol.astype(np.float32) - 1024.0)  # HU = stored * 1 - 1024
    assert v.spacing == pytest.approx((2.5, 0.7, 0.8))  # dz from positions, not SliceThickness 5.0
    assert v.modality == "CT" and v.notes["not_dicom_files"] == 1
    # the file list follows the geometry too
    assert [os.path.basename(f) for f in v.files] == [f"IM{p:04d}.dcm" for p in perm]


def test_oblique_series_sorted_along_normal(tmp_path):
    vol = _ramp()
    c, s = np.cos(0.5), np.sin(0.5)
    # rows tilted about x: normal = (0, -s, c); the z coordinate alone would still sort, so tilt about y too
    orientation = (c, 0.0, -s, 0.0, 1.0, 0.0)  # normal = (s, 0, c)
    write_series(tmp_path / "obl", vol, orientation=orientation, origin=(10.0, -5.0, 3.0), dz=1.25,
                 order=[5, 4, 3, 2, 1, 0])
    [v] = read_dicom_series(tmp_path / "obl")
    np.testing.assert_array_equal(v.array[:, 0, 0], vol[:, 0, 0] - 1024.0)
    assert v.spacing[0] == pytest.approx(1.25)


def test_two_series_in_one_folder_are_grouped_by_uid(tmp_path):
    write_series(tmp_path / "mixed", _ramp(4), names=[f"a{i}.dcm" for i in range(4)])
    write_series(tmp_path / "mixed", _ramp(3, 2, 2), dz=5.0, names=[f"b{i}.dcm" for i in range(3)])
    vols = read_dicom_series(tmp_path / "mixed")
    assert sorted(v.shape for v in vols) == [(3, 2, 2), (4, 5, 4)]
    assert len({v.series_id for v in vols}) == 2


def test_rescale_16bit_unsigned_and_monochrome1(tmp_path):
    vol = (np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 3000)
    write_series(tmp_path / "u16", vol, slope=0.5, intercept=-100.0, photometric="MONOCHROME1")
    [v] = read_dicom_series(tmp_path / "u16")
    np.testing.assert_allclose(v.array, vol.astype(np.float32) * 0.5 - 100.0)
    assert v.array.max() > 20000  # 16-bit range kept
    assert v.invert
    display = to_uint8(v.array[0], invert=v.invert)
    assert display[0, 0] == 255 and display[-1, -1] == 0  # lowest value shown white


def test_missing_slice_is_noted_and_duplicate_position_is_an_error(tmp_path):
    vol = _ramp(5)
    write_series(tmp_path / "gap", vol[[0, 1, 3, 4]], names=[f"g{i}.dcm" for i in range(4)])
    # rewrite positions: 0, 2.5, 7.5, 10 (slice 2 missing)
    for i, z in enumerate([0.0, 2.5, 7.5, 10.0]):
        f = tmp_path / "gap" / f"g{i}.dcm"
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.save_as(f)
    [v] = read_dicom_series(tmp_path / "gap")
    assert v.spacing[0] == pytest.approx(2.5) and v.notes["slice_gaps"] == [2.5, 5.0]
    f = tmp_path / "gap" / "g3.dcm"
    ds = pydicom.dcmread(f)
    ds.ImagePositionPatient = [0.0, 0.0, 7.5]
    ds.save_as(f)
    with pytest.raises(DataError, match="same position"):
        read_dicom_series(tmp_path / "gap")


def test_multiframe_sorted_by_functional_group_positions(tmp_path):
    vol = _ramp(4, 3, 3)
    write_multiframe(tmp_path / "mf.dcm", vol, shuffle=[2, 0, 3, 1])
    [v] = read_dicom_series(tmp_path / "mf.dcm")
    np.testing.assert_array_equal(v.array, vol.astype(np.float32) * 2.0 - 1000.0)
    assert v.spacing == pytest.approx((3.0, 0.5, 0.5)) and v.notes["multi_frame"] == 4


def test_header_phi_removed_and_recorded_without_values(tmp_path):
    write_series(tmp_path / "phi", _ramp(2))
    [v] = read_dicom_series(tmp_path / "phi")
    flat = json.dumps(v.summary()) + json.dumps(v.header)
    for value in PHI.values():
        assert value not in flat and value.split("^")[0] not in flat
    assert "Quenvaro" not in flat and "Dastrelik" not in flat
    assert set(PHI) <= set(v.phi_removed)
    assert {"PatientAge", "StudyDescription", "private tags"} <= set(v.phi_removed)  # age 93 > 89
    assert v.header["StudyDescription"].startswith("CT chest for ")
    assert v.header["PatientSex"] == "F" and "PatientAge" not in v.header


def test_corrupt_dicom_names_the_file(tmp_path):
    write_series(tmp_path / "bad", _ramp(2))
    f = sorted((tmp_path / "bad").iterdir())[0]
    ds = pydicom.dcmread(f)
    ds.PixelData = ds.PixelData[:7]  # truncated pixels
    ds.save_as(f)
    with pytest.raises(DataError) as err:
        read_dicom_series(tmp_path / "bad")
    assert str(f) in str(err.value) and "PixelData" in str(err.value)
    with pytest.raises(DataError, match="no DICOM files"):
        read_dicom_series(_folder_without_dicom(tmp_path))


def _folder_without_dicom(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "x.txt").write_text("x")
    return d


def test_window_matches_pydicom_apply_windowing():
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_windowing

    values = np.linspace(-1500, 2500, 401)
    for centre, width in [(-600, 1500), (40, 80), (50.5, 351), (300, 2)]:
        ds = Dataset()
        ds.PhotometricInterpretation, ds.BitsStored, ds.PixelRepresentation = "MONOCHROME2", 16, 1
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = centre, width, "LINEAR"
        ref = apply_windowing(values.copy(), ds)  # output in the stored range [-32768, 32767]
        ref01 = (ref + 32768) / 65535
        np.testing.assert_allclose(apply_window(values, (centre, width)), ref01, atol=1e-6)
    with pytest.raises(ConfigError, match="lung"):
        apply_window(values, "lungs")


def _nifti(tmp_path, data, affine, name="v.nii.gz"):
    f = tmp_path / name
    nib.save(nib.Nifti1Image(data, affine), f)
    return f


def test_nifti_canonical_ras_dhw_and_spacing(tmp_path):
    data = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # (i, j, k)
    ras = _nifti(tmp_path, data, np.diag([0.5, 0.8, 2.0, 1.0]), "ras.nii.gz")
    v = read_nifti(ras)
    assert v.shape == (2, 3, 4) and v.spacing == pytest.approx((2.0, 0.8, 0.5))
    assert v.array.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(v.array, np.transpose(data, (2, 1, 0)))
    # the same physical volume stored LPS (i and j flipped): same array after reorientation
    lps_affine = np.diag([-0.5, -0.8, 2.0, 1.0])
    lps_affine[:3, 3] = [1.5, 1.6, 0.0]  # keeps the same voxel centres in world space
    lps = _nifti(tmp_path, data[::-1, ::-1, :].copy(), lps_affine, "lps.nii.gz")
    w = read_nifti(lps)
    np.testing.assert_array_equal(w.array, v.array)
    assert w.notes["reoriented_from"] == "LPS"


def test_nifti_4d_and_corrupt(tmp_path):
    f = _nifti(tmp_path, np.zeros((2, 2, 2, 3), np.float32), np.eye(4), "t.nii.gz")
    with pytest.raises(DataError, match="4D"):
        read_nifti(f)
    assert read_nifti(f, volume_index=1).shape == (2, 2, 2)
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(f.read_bytes()[:40])
    with pytest.raises(DataError) as err:
        read_nifti(bad)
    assert str(bad) in str(err.value)


def test_resample_keeps_a_linear_ramp_exact():
    d, h, w = 6, 8, 10
    z, y, x = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
    spacing = (3.0, 1.0, 0.5)
    # values linear in physical position: trilinear interpolation must reproduce them inside the volume
    phys = lambda z, y, x: 2.0 * z * spacing[0] + 0.5 * y * spacing[1] - x * spacing[2]  # noqa: E731
    vol = Volume(phys(z, y, x).astype(np.float32), spacing, "CT", "ramp")
    r = resample_volume(vol, spacing=(1.5, 0.5, 1.0))
    assert r.shape == (12, 16, 5) and r.spacing == (1.5, 0.5, 1.0)
    zz, yy, xx = np.meshgrid(*[(np.arange(m) + 0.5) * ns / os_ - 0.5 for m, ns, os_ in
                               zip(r.shape, r.spacing, spacing, strict=True)], indexing="ij")
    inside = (zz >= 0) & (zz <= d - 1) & (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
    np.testing.assert_allclose(r.array[inside], phys(zz, yy, xx)[inside], atol=1e-4)
    s = resample_volume(vol, size=(3, 4, 5))
    assert s.shape == (3, 4, 5) and s.spacing == pytest.approx((6.0, 2.0, 1.0))
    with pytest.raises(ConfigError):
        resample_volume(vol, spacing=(1.0, 0.0, 1.0))


def test_radiograph_dicom_loads_as_windowed_image(tmp_path):
    img = np.tile(np.arange(0, 1000, 100, dtype=np.uint16), (4, 1))
    write_series(tmp_path / "cr", img[None], intercept=0.0, photometric="MONOCHROME1", names=["cr.dcm"])
    pil = load_image(tmp_path / "cr" / "cr.dcm")
    arr = np.asarray(pil)[..., 0]
    assert pil.size == (10, 4) and arr[0, 0] == 255 and arr[0, -1] == 0


def test_cli_inspect_dicom_and_nifti(tmp_path):
    write_series(tmp_path / "ct", _ramp())
    (tmp_path / "nii").mkdir()
    _nifti(tmp_path / "nii", np.zeros((4, 3, 2), np.float32), np.diag([0.5, 0.8, 2.0, 1.0]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-m", "clinforge", "data", "inspect", str(tmp_path / "ct"), "--format",
                          "dicom", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    [series] = json.loads(out.stdout)["volumes"]
    assert series["shape"] == [6, 5, 4] and series["spacing"] == [2.5, 0.7, 0.8] and series["modality"] == "CT"
    assert "Quenvaro" not in out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "clinforge", "data", "inspect", str(tmp_path / "nii"), "--format",
                          "nifti"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2 x 3 x 4" in out.stdout and "spacing (dz x dy x dx) 2 x 0.8 x 0.5 mm" in out.stdout
