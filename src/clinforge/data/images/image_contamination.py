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


class ImageHashIndex:
    """Hashes of a set of images, each with an owner label (a record id), for near-duplicate look-ups.

    Each distinct file is hashed once. ``find(path)`` returns the closest indexed image within ``max_distance`` (both
    pHash and dHash), byte-identical files first, as ``{"owner", "image", "phash_distance", "dhash_distance",
    "exact"}``, or ``None``.

    Example:
        >>> from PIL import Image; import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); Image.new("L", (40, 40), 200).save(d / "a.png")
        >>> idx = ImageHashIndex([(d / "a.png", "bench-1")]); idx.find(d / "a.png")["owner"]
        'bench-1'
    """

    def __init__(self, items: Sequence[tuple[str | os.PathLike, str]], *, max_distance: int = DEFAULT_MAX_DISTANCE):
        self.max_distance = max_distance
        self.paths: list[str] = []
        self.owners: list[str] = []
        self.by_sha: dict[str, int] = {}
        ph, dh = [], []
        seen: set[str] = set()
        for path, owner in items:
            key = str(Path(path).resolve())
            if key in seen:
                continue
            seen.add(key)
            h = image_hashes(key, record=owner)
            self.by_sha.setdefault(h["sha256"], len(self.paths))
            self.paths.append(key)
            self.owners.append(owner)
            ph.append(h["phash"])
            dh.append(h["dhash"])
        self._ph = np.array(ph, dtype=np.uint64)
        self._dh = np.array(dh, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.paths)

    def find(self, path: str | os.PathLike, *, record: str | None = None,
             hashes: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The closest indexed near-duplicate of ``path`` (see the class docstring)."""
        h = hashes or image_hashes(path, record=record)
        if h["sha256"] in self.by_sha:
            i = self.by_sha[h["sha256"]]
            return {"owner": self.owners[i], "image": self.paths[i], "phash_distance": 0, "dhash_distance": 0,
                    "exact": True}
        if not self.paths:
            return None
        dp = _popcount(self._ph ^ np.uint64(h["phash"]))
        dd = _popcount(self._dh ^ np.uint64(h["dhash"]))
        close = np.flatnonzero((dp <= self.max_distance) & (dd <= self.max_distance))
        if not close.size:
            return None
        best = int(close[np.argmin(dp[close] + dd[close])])
        return {"owner": self.owners[best], "image": self.paths[best], "phash_distance": int(dp[best]),
                "dhash_distance": int(dd[best]), "exact": False}


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
    index = ImageHashIndex([(p, str(Path(p).resolve())) for p in train], max_distance=max_distance)
    test_paths = list(dict.fromkeys(str(Path(p).resolve()) for p in test))
    pairs: list[dict[str, Any]] = []
    for p in test_paths:
        hit = index.find(p)
        if hit is not None:
            pairs.append({"test": p, "train": hit["image"], "phash_distance": hit["phash_distance"],
                          "dhash_distance": hit["dhash_distance"], "exact": hit["exact"]})
    exact = sum(1 for x in pairs if x["exact"])
    return {"train_images": len(index), "test_images": len(test_paths),
            "test_images_with_train_duplicate": len(pairs), "exact": exact, "near": len(pairs) - exact,
            "share": len(pairs) / len(test_paths) if test_paths else float("nan"), "max_distance": max_distance,
            "hashes": "phash+dhash (imagehash), 64 bit", "action": "reported" if published else "move or drop",
            "pairs": pairs}


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (numpy >= 2 counts natively; the loop is the fallback for numpy 1.x)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values.astype(np.uint64)).astype(np.int64)
    return np.array([bin(int(v)).count("1") for v in values.ravel()], dtype=np.int64).reshape(values.shape)
