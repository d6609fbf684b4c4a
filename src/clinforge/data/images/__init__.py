"""Medical images: PNG/JPEG files, DICOM series and NIfTI volumes, windowing, resampling, image contamination.

Modules (each importable on its own; pydicom, nibabel, scipy and imagehash are the ``imaging`` extra):

* :mod:`~clinforge.data.images.volumes` -- the ``Volume`` (D x H x W array, spacing, modality, provenance);
* :mod:`~clinforge.data.images.dicom_series` -- DICOM series grouped by SeriesInstanceUID, geometric slice order;
* :mod:`~clinforge.data.images.dicom_phi` -- header de-identification on import;
* :mod:`~clinforge.data.images.nifti_volumes` -- NIfTI in canonical RAS+;
* :mod:`~clinforge.data.images.windowing` -- window centre/width, named presets, 8-bit display values;
* :mod:`~clinforge.data.images.volume_resampling` -- target spacing/size;
* :mod:`~clinforge.data.images.image_files` -- 2D images, ``data:`` URIs, corrupt-file errors;
* :mod:`~clinforge.data.images.image_contamination` -- near-duplicate images across splits.

Example:
    >>> from clinforge.data.images.windowing import WINDOW_PRESETS
    >>> WINDOW_PRESETS["lung"]
    (-600.0, 1500.0)
"""
