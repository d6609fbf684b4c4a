"""Near-duplicate images across splits (image contamination), by perceptual hash.

Text deduplication misses the commonest leak of VQA benchmarks: the same radiograph under different questions in
train and test. Each image gets a 64-bit **pHash** (DCT of a 32x32 grey thumbnail, sign of the 8x8 low frequencies
against their median; the ``imagehash`` package's definition) and **dHash** (sign of horizontal gradients of a 9x8
thumbnail). Two images are near-duplicates when both Hamming distances are ``<= max_distance`` (default 6 of 64
bits: survives re-encoding, resizing and small crops; different radiographs of the same body part are typically
> 20 apart). Byte-identical files are found by SHA-256 first.

For a published benchmark the duplicates are **reported, never dropped**: its numbers are only comparable on the
published split. For a user's own splits the report lists what to move.

Example:
    >>> report = image_contamination(["train/a.jpg"], ["test/a.jpg"])  # doctest: +SKIP
    >>> report["test_images_with_train_duplicate"]  # doctest: +SKIP
    1
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clinforge.data.images.image_files import load_image

DEFAULT_MAX_DISTANCE = 6


def image_hashes(path: str | os.PathLike, *, record: str | None = None) -> dict[str, Any]:
    """``{"sha256", "phash", "dhash"}`` of one image file (hashes as 64-bit integers).

    Example:
        >>> from PIL import Image; import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.png"; Image.new("L", (40, 40), 128).save(f)
        >>> sorted(image_hashes(f))
        ['dhash', 'phash', 'sha256']
    """
    import imagehash

    image = load_image(path, record=record)
    as_int = lambda h: int("".join("1" if b else "0" for b in np.asarray(h.hash).flatten()), 2)  # noqa: E731
    return {"sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "phash": as_int(imagehash.phash(image)), "dhash": as_int(imagehash.dhash(image))}


def hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit hashes.

    Example:
        >>> hamming(0b1011, 0b0001)
        2
    """
    return int(bin(a ^ b).count("1"))


def image_contamination(train: Sequence[str | os.PathLike], test: Sequence[str | os.PathLike], *,
                        max_distance: int = DEFAULT_MAX_DISTANCE, published: bool = False) -> dict[str, Any]:
    """Which test images have a byte-identical or near-duplicate image among the train images.

    Inputs are image paths (repeats allowed: one image per question; each distinct path is hashed once). Returns
    counts over **distinct** test images, the pairs (test, train, pHash and dHash distances, exact), and
    ``action``: ``"reported"`` for a published split (never drop), ``"move or drop"`` otherwise.

    Example:
        >>> from PIL import Image, ImageDraw; import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); im = Image.new("L", (64, 64)); ImageDraw.Draw(im).ellipse((8, 8, 40, 50), 255)
        >>> im.save(d / "a.png"); im.resize((60, 60)).save(d / "b.png"); Image.new("L", (64, 64), 90).save(d / "c.png")
        >>> r = image_contamination([d / "a.png"], [d / "b.png", d / "c.png"])
        >>> r["test_images"], r["test_images_with_train_duplicate"], r["exact"]
        (2, 1, 0)
    """
    def distinct(paths: Sequence[str | os.PathLike]) -> list[str]:
        return list(dict.fromkeys(str(Path(p).resolve()) for p in paths))

    train_paths, test_paths = distinct(train), distinct(test)
    train_h = {p: image_hashes(p) for p in train_paths}
    by_sha: dict[str, str] = {}
    for p, h in train_h.items():
        by_sha.setdefault(h["sha256"], p)
    train_ph = np.array([h["phash"] for h in train_h.values()], dtype=np.uint64)
    train_dh = np.array([h["dhash"] for h in train_h.values()], dtype=np.uint64)
    names = list(train_h)
    pairs: list[dict[str, Any]] = []
    exact = 0
    for p in test_paths:
        h = image_hashes(p)
        if h["sha256"] in by_sha:
            exact += 1
            pairs.append({"test": p, "train": by_sha[h["sha256"]], "phash_distance": 0, "dhash_distance": 0,
                          "exact": True})
            continue
        if not names:
            continue
        dp = _popcount(train_ph ^ np.uint64(h["phash"]))
        dd = _popcount(train_dh ^ np.uint64(h["dhash"]))
        close = np.flatnonzero((dp <= max_distance) & (dd <= max_distance))
        if close.size:
            best = int(close[np.argmin(dp[close] + dd[close])])
            pairs.append({"test": p, "train": names[best], "phash_distance": int(dp[best]),
                          "dhash_distance": int(dd[best]), "exact": False})
    n_dup = len(pairs)
    return {"train_images": len(train_paths), "test_images": len(test_paths),
            "test_images_with_train_duplicate": n_dup, "exact": exact, "near": n_dup - exact,
            "share": n_dup / len(test_paths) if test_paths else float("nan"), "max_distance": max_distance,
            "hashes": "phash+dhash (imagehash), 64 bit", "action": "reported" if published else "move or drop",
            "pairs": pairs}


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (numpy >= 2 counts natively; the loop is the fallback for numpy 1.x)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values.astype(np.uint64)).astype(np.int64)
    return np.array([bin(int(v)).count("1") for v in values.ravel()], dtype=np.int64).reshape(values.shape)
