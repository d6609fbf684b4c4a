"""2D images (PNG, JPEG, a single-frame DICOM) as Pillow images, with errors that name the file and the record.

Example:
    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "x.jpg"; _ = bad.write_bytes(b"not a jpeg")
    >>> load_image(bad, record="vqa_rad-test-7")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clinforge.core.errors.DataError: .../x.jpg, record vqa_rad-test-7: not a readable image (UnidentifiedImageError...
"""

from __future__ import annotations

import base64
import io
import mimetypes
import os
from pathlib import Path
from typing import Any

from clinforge.core.errors import DataError

DICOM_SUFFIXES = (".dcm", ".dicom")


def _dicom_image(file: Path, record: str | None, window: Any) -> Any:
    from PIL import Image

    from clinforge.data.images.dicom_series import read_dicom_series
    from clinforge.data.images.windowing import to_uint8

    volume = read_dicom_series(file)[0]
    if volume.shape[0] != 1:
        raise DataError(f"a {volume.shape[0]}-frame DICOM is a volume, not a 2D image", file=str(file), record=record)
    window = window or (volume.header.get("WindowCenter"), volume.header.get("WindowWidth"))
    if isinstance(window, tuple) and (window[0] is None or window[1] is None):
        window = None
    elif isinstance(window, tuple):  # a header may list several windows: the first is the default
        window = tuple(w[0] if isinstance(w, list) else w for w in window)
    return Image.fromarray(to_uint8(volume.array[0], window, invert=volume.invert)).convert("RGB")


def load_image(path: str | os.PathLike, *, record: str | None = None, window: Any = None) -> Any:
    """An RGB ``PIL.Image`` of a PNG/JPEG/... file or a single-frame DICOM (windowed; MONOCHROME1 inverted).

    The file is decoded completely here (Pillow is lazy: a truncated JPEG would otherwise fail later, inside the
    model's processor, without a file name). ``record`` is the record id to name in errors.

    Example:
        >>> from PIL import Image; import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.png"; Image.new("L", (4, 3)).save(f)
        >>> load_image(f).size, load_image(f).mode
        ((4, 3), 'RGB')
    """
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if not file.is_file():
        raise DataError("image file not found", file=str(file), record=record)
    if file.suffix.lower() in DICOM_SUFFIXES:
        return _dicom_image(file, record, window)
    try:
        with Image.open(file) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"not a readable image ({type(exc).__name__}: {exc})", file=str(file),
                        record=record) from None


def image_data_uri(source: str, *, record: str | None = None) -> str:
    """A ``data:`` URI of an image path (PNG/JPEG bytes as they are; other formats re-encoded as PNG).

    A ``data:`` URI passes through unchanged. The image is decoded first so a corrupt file fails here, named.

    Example:
        >>> image_data_uri("data:image/png;base64,AAAA")
        'data:image/png;base64,AAAA'
    """
    if source.startswith("data:"):
        return source
    image = load_image(source, record=record)
    mime = mimetypes.guess_type(source)[0]
    if mime in ("image/png", "image/jpeg"):
        raw = Path(source).read_bytes()
    else:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        raw, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def decode_image(source: str, *, record: str | None = None) -> Any:
    """An RGB ``PIL.Image`` from a path or a ``data:`` URI (what ``GenerationRequest.images`` holds).

    Example:
        >>> import base64, io; from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (2, 2)).save(buf, format="PNG")
        >>> decode_image("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()).size
        (2, 2)
    """
    from PIL import Image, UnidentifiedImageError

    if not source.startswith("data:"):
        return load_image(source, record=record)
    header, sep, payload = source.partition(",")
    if not sep or ";base64" not in header:
        raise DataError("a data: URI image must be base64 (data:image/png;base64,...)", record=record, field="images")
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"data: URI is not a readable image ({type(exc).__name__})", record=record,
                        field="images") from None
