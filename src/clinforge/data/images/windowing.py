"""Window centre/width (DICOM's linear VOI function) and named CT presets, to display-ready 8-bit images.

The linear function is DICOM PS3.3 C.11.2.1.2.1 (the one ``pydicom.pixels.apply_windowing`` implements; a test
compares the two): with centre ``c`` and width ``w``, ``x <= c - 0.5 - (w - 1) / 2`` maps to 0,
``x > c - 0.5 + (w - 1) / 2`` to 1, and values in between to ``((x - (c - 0.5)) / (w - 1) + 0.5)``.
Presets (centre, width in HU) are the usual radiology settings (Radiopaedia "Windowing (CT)"); users add their own
to ``WINDOW_PRESETS``.
"""

from __future__ import annotations

import numpy as np

from clinforge.core.errors import ConfigError, did_you_mean

# name -> (centre, width), Hounsfield units
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (50.0, 400.0),
    "abdomen": (60.0, 400.0),
    "liver": (30.0, 150.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
}


def resolve_window(window: str | tuple[float, float]) -> tuple[float, float]:
    """``(centre, width)`` of a preset name or a pair; an unknown name lists the presets.

    Example:
        >>> resolve_window("lung")
        (-600.0, 1500.0)
        >>> resolve_window((40, 80))
        (40.0, 80.0)
    """
    if isinstance(window, str):
        if window not in WINDOW_PRESETS:
            raise ConfigError(f"unknown window preset {window!r}{did_you_mean(window, WINDOW_PRESETS)}; valid: "
                              f"{', '.join(WINDOW_PRESETS)} or a (centre, width) pair", key="window")
        return WINDOW_PRESETS[window]
    centre, width = (float(v) for v in window)
    if width < 1:
        raise ConfigError(f"window width must be >= 1, got {width}", key="window")
    return centre, width


def apply_window(values: np.ndarray, window: str | tuple[float, float]) -> np.ndarray:
    """Map values through DICOM's linear window to floats in [0, 1].

    Example:
        >>> [round(float(x), 3) for x in apply_window(np.array([-2000.0, 40.0, 3000.0]), "brain")]
        [0.0, 0.506, 1.0]
    """
    centre, width = resolve_window(window)
    x = np.asarray(values, dtype=np.float64)
    if width == 1:  # the standard's special case: a step at the centre
        return (x > centre - 0.5).astype(np.float32)
    y = (x - (centre - 0.5)) / (width - 1) + 0.5
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def to_uint8(values: np.ndarray, window: str | tuple[float, float] | None = None, *, invert: bool = False) -> np.ndarray:
    """8-bit display values: windowed when ``window`` is given, else min-max scaled; MONOCHROME1 is inverted.

    Example:
        >>> to_uint8(np.array([0.0, 50.0, 100.0])).tolist()
        [0, 128, 255]
        >>> to_uint8(np.array([0.0, 100.0]), invert=True).tolist()
        [255, 0]
    """
    if window is not None:
        scaled = apply_window(values, window)
    else:
        x = np.asarray(values, dtype=np.float64)
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        scaled = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if invert:  # MONOCHROME1: the lowest stored value is white
        scaled = 1.0 - scaled
    return np.round(scaled * 255.0).astype(np.uint8)
