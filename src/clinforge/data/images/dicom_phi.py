"""De-identification of DICOM headers on import: what is kept, what is removed, and what is recorded.

A DICOM header carries PHI in fixed attributes (names, IDs, dates, addresses, institution) and in free text
(descriptions, comments). On import clinforge

* drops every attribute of ``PHI_KEYWORDS`` (the identifying attributes of DICOM PS3.15 Annex E's Basic
  Application Level Confidentiality Profile that clinical exports commonly fill, plus all dates and times), every
  private (odd-group) tag and every attribute not in ``KEPT_KEYWORDS``;
* passes the free-text attributes of ``TEXT_KEYWORDS`` through clinforge's text de-identifier
  (:class:`clinforge.data.deid.Deidentifier`, mask mode), so "CT chest for John Smith" keeps "CT chest";
* keeps ``PatientAge`` only up to 089Y (HIPAA Safe Harbor: ages over 89 are PHI) and ``PatientSex``;
* records the *keywords* it removed or rewrote, never their values (the values must not reach a log or a report).

Example:
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset(); ds.PatientName = "Doe^Jane"; ds.Modality = "CT"; ds.StudyDate = "20240101"
    >>> header, removed = deidentify_header(ds)
    >>> header, removed
    ({'Modality': 'CT'}, ['PatientName', 'StudyDate'])
"""

from __future__ import annotations

from typing import Any

PHI_KEYWORDS = frozenset({
    "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "OtherPatientIDsSequence",
    "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "PatientBirthDate", "PatientBirthTime",
    "PatientAddress", "PatientTelephoneNumbers", "MedicalRecordLocator", "MilitaryRank", "BranchOfService",
    "EthnicGroup", "Occupation", "PatientInsurancePlanCodeSequence", "PatientReligiousPreference",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
    "RequestingPhysician", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
    "DeviceSerialNumber", "AccessionNumber", "StudyID", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
    "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "AcquisitionDateTime", "InstanceCreationDate",
    "InstanceCreationTime", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID", "RequestAttributesSequence", "StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID", "FrameOfReferenceUID", "ReferencedStudySequence", "ReferencedPatientSequence",
})
# free text that may mention a person, place or date: kept after text de-identification
TEXT_KEYWORDS = frozenset({"StudyDescription", "SeriesDescription", "ProtocolName", "BodyPartExamined",
                           "ImageComments", "AdditionalPatientHistory", "PatientComments"})
# technical attributes kept as they are (needed to read, window and describe the image)
KEPT_KEYWORDS = frozenset({
    "Modality", "Manufacturer", "ManufacturerModelName", "PatientSex", "PatientAge", "SliceThickness",
    "SpacingBetweenSlices", "KVP", "ConvolutionKernel", "PhotometricInterpretation", "BitsAllocated", "BitsStored",
    "PixelRepresentation", "Rows", "Columns", "NumberOfFrames", "PixelSpacing", "ImageOrientationPatient",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth", "SamplesPerPixel",
    "ContrastBolusAgent", "ViewPosition", "ImageType", "MagneticFieldStrength", "EchoTime", "RepetitionTime",
})


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a pydicom value (MultiValue -> list, DSfloat -> float, PersonName -> str)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, (int, float)):
        return float(value) if isinstance(value, float) else int(value)
    return str(value)


def deidentify_header(ds: Any, deidentifier: Any = None) -> tuple[dict[str, Any], list[str]]:
    """The de-identified header (keyword -> value) of a pydicom Dataset and the sorted keywords removed/rewritten.

    ``deidentifier``: a :class:`clinforge.data.deid.Deidentifier` for the free-text fields (default: mask mode).
    Attributes that are neither PHI, text nor in ``KEPT_KEYWORDS`` are dropped silently (they are not recorded as
    PHI: "removed" means a PHI attribute was present).

    Example:
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset(); ds.PatientAge = "093Y"; ds.PatientSex = "F"
        >>> deidentify_header(ds)
        ({'PatientSex': 'F'}, ['PatientAge'])
    """
    header: dict[str, Any] = {}
    removed: set[str] = set()
    texts: dict[str, str] = {}
    for elem in ds:
        keyword = elem.keyword
        if elem.tag.is_private:
            removed.add("private tags")
            continue
        if not keyword or keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            continue
        if keyword in PHI_KEYWORDS or keyword.endswith(("Date", "Time", "DateTime")):
            if elem.value not in (None, ""):
                removed.add(keyword)
            continue
        if keyword in TEXT_KEYWORDS and elem.value not in (None, ""):
            texts[keyword] = str(elem.value)
            continue
        if keyword == "PatientAge" and elem.value:
            age = str(elem.value)
            if age.endswith("Y") and age[:-1].isdigit() and int(age[:-1]) > 89:
                removed.add(keyword)
                continue
        if keyword in KEPT_KEYWORDS and elem.value not in (None, ""):
            header[keyword] = _plain(elem.value)
    if texts:
        if deidentifier is None:
            from clinforge.data.deid import Deidentifier

            deidentifier = Deidentifier(mode="mask")
        for keyword, text in texts.items():
            result = deidentifier.deidentify(text)
            header[keyword] = result.text
            if result.text != text:
                removed.add(keyword)
    return header, sorted(removed)
