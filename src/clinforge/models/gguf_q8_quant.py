"""llama.cpp's Q8_0 blocks (32 weights, one float16 scale, 32 int8 values; read back as ``scale * int8``) written
either exactly as llama.cpp's quantizer writes them or with the scale chosen to minimise the block's squared error.

* ``rtn`` (round to nearest): scale ``max|w| / 127``, each weight rounded to the nearest step; byte-identical to
  llama.cpp's ``quantize_row_q8_0_ref`` (through the ``gguf`` package's bit-exact port).
* ``search``: per block, several float16 scales are tried and the one with the least squared error is kept (the
  int8 values are then the nearest steps, clamped to [-127, 127]); llama.cpp's own k-quant quantizers choose their
  scales the same way (an rmse-minimising search). The candidates are llama.cpp's RTN scale itself (so no block
  ever ends up worse than ``rtn``), a grid of ``max|w| / t`` for t a little under 127, the block's smallest gap
  between distinct values divided by an integer (a block whose weights already lie on a coarser grid, e.g. a model
  de-quantised from a 4-bit GGUF, is then stored on a fraction d/k of that grid step d), and a least-squares
  refinement of the best scale for its int8 values. The output is the same Q8_0 format, so every reader (llama.cpp,
  transformers ``gguf_file=``) loads it unchanged.

What the search gains depends on the weights: on SmolLM2-135M, whose weights are themselves de-quantised from a
Q4_1 GGUF (at most 16 distinct values per block of 32), relative RMSE falls to about 0.4x RTN's; on weights that lie
on no grid (the same weights plus 1% noise) to about 0.87x (docs/edge.md).
"""

from __future__ import annotations

from typing import Any

from clinforge.core.errors import ClinforgeError

Q8_SCALES = ("rtn", "search")
BLOCK = 32
# candidates: the grid max|w|/t (t from GRID_LOW to just under 127.5, so the largest weight still rounds to 127),
# SPACING_DIVISORS integer divisors of the block's smallest value gap, then REFINE least-squares steps. Chosen on
# weight RMSE (data-free) and on the tuning texts of benchmarks/gguf_q8_groups.py, never on the reported texts.
GRID_LOW, GRID_STEPS, SPACING_DIVISORS, REFINE = 116.0, 32, 8, 2
_CHUNK = 8192  # blocks per vectorised step: keeps the (blocks x candidates x 32) temporaries around 10-40 MB


def _f16(a: Any) -> Any:
    import numpy as np

    return a.astype(np.float16).astype(np.float32)


def _rtn(blocks: Any) -> tuple[Any, Any]:
    """(float16 scale as float32, int8 values) exactly as llama.cpp's reference Q8_0 quantizer computes them."""
    import numpy as np
    from gguf.quants import np_roundf

    d = np.abs(blocks).max(axis=1) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np_roundf(blocks * inv[:, None])
    return _f16(d), q.astype(np.int8)


def _nearest(blocks: Any, scales: Any) -> Any:
    """int8-range values (float32) nearest to ``blocks / scales``; ``scales`` (n, c) -> (n, c, 32)."""
    import numpy as np

    safe = np.where(scales > 0, scales, np.float32(1))
    inv = (np.float32(1) / safe).astype(np.float32)
    q = blocks[:, None, :] * inv[:, :, None]
    np.rint(q, out=q)
    return np.clip(q, -127, 127, out=q)


def _sq_error(blocks: Any, scales: Any) -> Any:
    """Squared error of each block under each candidate scale (n, c); non-positive or infinite scales: inf."""
    import numpy as np

    q = _nearest(blocks, scales)
    q *= scales[:, :, None]
    np.subtract(blocks[:, None, :], q, out=q)
    err = np.einsum("ncj,ncj->nc", q, q)
    return np.where((scales > 0) & np.isfinite(scales), err, np.inf)


def _candidates(blocks: Any) -> Any:
    """Candidate float16 scales (n, c) of each block, as float32."""
    import numpy as np

    amax = np.abs(blocks).max(axis=1)
    t = np.linspace(GRID_LOW, 127.49, GRID_STEPS, dtype=np.float32)
    grid = amax[:, None] / t[None, :]
    ordered = np.sort(blocks, axis=1)
    gaps = np.diff(ordered, axis=1)
    # gaps of a few float32 ulps are arithmetic noise of the same grid value, not a finer grid
    gaps = np.where(gaps > amax[:, None] * np.float32(2.0 ** -20), gaps, np.inf)
    spacing = gaps.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # the largest divisor k whose step spacing/k still reaches max|w| with 127 steps (no clamping), and below
        k_max = np.floor(np.float32(127.49) * spacing / amax)
        k = k_max[:, None] - np.arange(SPACING_DIVISORS, dtype=np.float32)[None, :]
        divided = np.where((k >= 1) & np.isfinite(k), spacing[:, None] / np.maximum(k, 1), 0)
    return _f16(np.concatenate([grid, divided], axis=1).astype(np.float32))


def _search_chunk(blocks: Any) -> tuple[Any, Any]:
    import numpy as np

    rtn_scale, rtn_q = _rtn(blocks)
    scales = _candidates(blocks)
    err = _sq_error(blocks, scales)
    pick = err.argmin(axis=1)
    rows = np.arange(len(blocks))
    best, best_err = scales[rows, pick], err[rows, pick]
    for _ in range(REFINE):  # least-squares scale for the chosen int8 values, rounded to float16 again
        q = _nearest(blocks, best[:, None])[:, 0, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            refined = _f16((blocks * q).sum(axis=1) / (q * q).sum(axis=1))
        refined_err = _sq_error(blocks, refined[:, None])[:, 0]
        better = refined_err < best_err
        best, best_err = np.where(better, refined, best), np.where(better, refined_err, best_err)
    q = _nearest(blocks, best[:, None])[:, 0, :].astype(np.int8)
    # the final comparison in float64 on the values a reader computes, so that "never worse than rtn" holds
    # exactly, not up to float32 summation order; ties stay llama.cpp's bytes
    exact = blocks.astype(np.float64)
    rtn_err = ((exact - rtn_q * rtn_scale[:, None].astype(np.float64)) ** 2).sum(axis=1)
    best_err = ((exact - q * best[:, None].astype(np.float64)) ** 2).sum(axis=1)
    keep_rtn = ~(best_err < rtn_err)
    return np.where(keep_rtn, rtn_scale, best), np.where(keep_rtn[:, None], rtn_q, q)


def q8_0_blocks(blocks: Any, scale: str = "search") -> tuple[Any, Any]:
    """(float16 scales as float32, int8 values) of ``blocks`` (n, 32) under ``scale`` (``rtn`` or ``search``).

    Example:
        >>> import numpy as np
        >>> block = (np.arange(32, dtype=np.float32) - 16) * np.float32(0.25)   # on a grid of step 0.25
        >>> s, q = q8_0_blocks(block[None], "search")
        >>> bool(np.array_equal(s[:, None] * q, block[None]))                    # reproduced exactly
        True
    """
    import numpy as np

    if scale not in Q8_SCALES:
        raise ClinforgeError(f"q8_0 scale {scale!r}: valid: {', '.join(Q8_SCALES)}")
    blocks = np.ascontiguousarray(blocks, dtype=np.float32)
    if scale == "rtn":
        return _rtn(blocks)
    scales, values = [], []
    for start in range(0, len(blocks), _CHUNK):
        s, q = _search_chunk(blocks[start:start + _CHUNK])
        scales.append(s)
        values.append(q)
    if not scales:
        return np.zeros(0, np.float32), np.zeros((0, BLOCK), np.int8)
    return np.concatenate(scales), np.concatenate(values)


def quantize_q8_0(array: Any, scale: str = "search", *, name: str = "tensor") -> Any:
    """``array`` (last dimension a multiple of 32) as Q8_0 bytes, laid out as ``gguf.quants.quantize`` returns them
    (uint8, ``(*rows, cols // 32 * 34)``: per block the float16 scale, then 32 int8), ready for ``GGUFWriter``.

    Example:
        >>> import gguf, numpy as np
        >>> w = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
        >>> bool((quantize_q8_0(w, "rtn") == gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0)).all())
        True
    """
    import numpy as np

    array = np.asarray(array, dtype=np.float32)
    if array.ndim < 1 or array.shape[-1] % BLOCK:
        raise ClinforgeError(f"{name}: shape {array.shape}: Q8_0 needs a last dimension that is a multiple of 32")
    if not np.isfinite(array).all():
        raise ClinforgeError(f"{name}: has non-finite values (NaN or inf); it cannot be quantised")
    scales, values = q8_0_blocks(array.reshape(-1, BLOCK), scale)
    out = np.concatenate([scales.astype(np.float16).view(np.uint8).reshape(-1, 2), values.view(np.uint8)], axis=1)
    return out.reshape(*array.shape[:-1], array.shape[-1] // BLOCK * (BLOCK + 2))


def dequantize_q8_0(data: Any, shape: tuple[int, ...]) -> Any:
    """The float32 weights a reader computes from Q8_0 bytes (``scale * int8``), in ``shape``.

    Example:
        >>> import numpy as np
        >>> w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
        >>> float(np.abs(dequantize_q8_0(quantize_q8_0(w), w.shape) - w).max()) < 1 / 254
        True
    """
    import numpy as np

    raw = np.asarray(data, dtype=np.uint8).reshape(-1, BLOCK + 2)
    scales = raw[:, :2].copy().view(np.float16).astype(np.float32)
    values = raw[:, 2:].copy().view(np.int8).astype(np.float32)
    return (values * scales).reshape(shape)
