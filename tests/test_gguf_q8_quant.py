"""The Q8_0 quantiser of ``clinforge export gguf``: ``rtn`` writes llama.cpp's bytes exactly (against the ``gguf``
package's bit-exact port and against llama.cpp's own quantizer run through llama-cpp-python); ``search`` reproduces a
block whose weights lie on a grid exactly, is never worse than ``rtn`` on any block, and the file it writes holds
exactly its blocks."""

from __future__ import annotations

import numpy as np
import pytest

from clinforge.core.errors import ClinforgeError
from clinforge.models.gguf_q8_quant import dequantize_q8_0, q8_0_blocks, quantize_q8_0
from conftest import require_llama_cpp


def _awkward_blocks(rng: np.random.Generator, n: int) -> np.ndarray:
    """Blocks of many shapes: Gaussian, heavy-tailed, uniform, one outlier, sparse, constant, all zero, and scales
    from float16's subnormal range to large."""
    kinds = [
        lambda: rng.standard_normal(32),
        lambda: rng.standard_t(2, 32),
        lambda: rng.uniform(-1, 1, 32),
        lambda: np.r_[rng.standard_normal(31) * 0.01, 5.0],
        lambda: rng.standard_normal(32) * (rng.random(32) < 0.2),
        lambda: np.full(32, rng.standard_normal()),
        lambda: np.zeros(32),
    ]
    blocks = np.stack([kinds[i % len(kinds)]() for i in range(n)])
    scale = 10.0 ** rng.uniform(-6, 3, (n, 1))
    return (blocks * scale).astype(np.float32)


def _sq_error(blocks: np.ndarray, scales: np.ndarray, values: np.ndarray) -> np.ndarray:
    # what a reader computes: float16 scale times int8, in float64 here so that the comparison is exact
    return ((blocks.astype(np.float64) - values.astype(np.float64) * scales[:, None].astype(np.float64)) ** 2).sum(1)


def test_rtn_is_byte_identical_to_the_gguf_package_port_of_llama_cpp():
    import gguf

    rng = np.random.default_rng(1)
    weights = _awkward_blocks(rng, 7000).reshape(-1, 32 * 10)
    assert (quantize_q8_0(weights, "rtn") == gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q8_0)).all()


def test_search_reproduces_a_block_on_a_grid_exactly_where_rtn_does_not():
    rng = np.random.default_rng(2)
    blocks = []
    for _ in range(300):
        step = np.float32(np.float16(10.0 ** rng.uniform(-3, 0)))  # a grid step a float16 scale can hold
        top = int(rng.integers(15, 128))
        ints = rng.integers(-top, top + 1, 32)
        low = int(rng.integers(-top, top))
        ints[0], ints[1], ints[2] = top * rng.choice([-1, 1]), low, low + 1  # reaches the top; neighbouring steps
        blocks.append(ints.astype(np.float32) * step)
    blocks = np.stack(blocks)
    scales, values = q8_0_blocks(blocks, "search")
    assert np.array_equal(values.astype(np.float32) * scales[:, None], blocks)  # every block reproduced exactly
    rtn_scales, rtn_values = q8_0_blocks(blocks, "rtn")
    exact_rtn = int((_sq_error(blocks, rtn_scales, rtn_values) == 0).sum())
    assert exact_rtn < 30, exact_rtn  # round-to-nearest with max/127 only hits it when the top is 127 (or by luck)


def test_search_is_never_worse_than_rtn_on_any_block():
    rng = np.random.default_rng(3)
    blocks = _awkward_blocks(rng, 20000)
    scales, values = q8_0_blocks(blocks, "search")
    rtn_scales, rtn_values = q8_0_blocks(blocks, "rtn")
    assert values.dtype == np.int8 and int(np.abs(values.astype(np.int16)).max()) <= 127
    assert np.isfinite(scales).all() and np.array_equal(scales, scales.astype(np.float16).astype(np.float32))
    search_err, rtn_err = _sq_error(blocks, scales, values), _sq_error(blocks, rtn_scales, rtn_values)
    assert (search_err <= rtn_err).all()
    # and it does gain on data that lies on no grid: every Gaussian block (kind 0) strictly better, as a whole ~10%
    gaussian = np.arange(len(blocks)) % 7 == 0
    assert (search_err[gaussian] < rtn_err[gaussian]).mean() > 0.9
    assert search_err[gaussian].sum() < 0.9 * rtn_err[gaussian].sum()
    # the bytes round-trip through the Q8_0 layout a reader parses
    packed = quantize_q8_0(blocks.reshape(-1, 64), "search")
    assert packed.shape == (len(blocks) // 2, 68) and packed.dtype == np.uint8
    assert np.array_equal(dequantize_q8_0(packed, (len(blocks), 32)), values * scales[:, None])


def test_bad_input_is_refused_with_the_tensor_named(tiny_llama, tmp_path):
    from clinforge.models.gguf_export import export_gguf

    with pytest.raises(ClinforgeError, match="--q8-scale 'mse': valid: rtn, search"):
        export_gguf(tiny_llama, tmp_path / "x.gguf", outtype="q8_0", q8_scale="mse")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ClinforgeError, match="blk.0.attn_q.weight: shape"):
        quantize_q8_0(np.zeros((2, 40), np.float32), name="blk.0.attn_q.weight")
    with pytest.raises(ClinforgeError, match="w1: has non-finite"):
        quantize_q8_0(np.r_[np.zeros(31), np.nan].astype(np.float32), name="w1")
    with pytest.raises(ClinforgeError, match="scale 'nearest'"):
        quantize_q8_0(np.zeros(32, np.float32), "nearest")


def test_rtn_is_byte_identical_to_llama_cpp_own_quantizer(tiny_llama, tmp_path):
    """llama.cpp's ``llama_model_quantize`` turns an f16 export into Q8_0; ``rtn`` on the same float16 weights must
    give the same bytes in every tensor llama.cpp wrote as Q8_0."""
    llama_cpp = require_llama_cpp()
    import gguf

    from clinforge.models.gguf_export import export_gguf

    f16 = tmp_path / "tiny-f16.gguf"
    export_gguf(tiny_llama, f16, outtype="f16", verify=False)
    q8 = tmp_path / "tiny-q8_0-by-llama-cpp.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.nthread = 1
    assert llama_cpp.llama_model_quantize(str(f16).encode(), str(q8).encode(), params) == 0
    source = {t.name: t for t in gguf.GGUFReader(f16).tensors}
    compared = 0
    for tensor in gguf.GGUFReader(q8).tensors:
        if tensor.tensor_type != gguf.GGMLQuantizationType.Q8_0:
            continue
        weights = np.asarray(source[tensor.name].data, dtype=np.float32)
        ours = quantize_q8_0(weights, "rtn", name=tensor.name)
        assert np.array_equal(ours.reshape(-1), np.asarray(tensor.data).reshape(-1)), tensor.name
        compared += 1
    assert compared >= 12  # 2 layers x 6 matrices (ffn_down has 80 columns: not a multiple of 32) + embedding


def test_exported_file_holds_exactly_the_chosen_blocks(tiny_llama, tmp_path):
    """Both scale choices write Q8_0 tensors a reader dequantises to the quantiser's values; ``search``'s are at
    least as close to the source weights as ``rtn``'s, tensor by tensor."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    from clinforge.models.gguf_export import export_gguf, permute_for_llama_cpp

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    source = {}
    for key, value in model.state_dict().items():
        data = value.numpy()
        if key.endswith("q_proj.weight"):
            data = permute_for_llama_cpp(data, config.num_attention_heads)
        elif key.endswith("k_proj.weight"):
            data = permute_for_llama_cpp(data, config.num_key_value_heads)
        source[names.get_name(key, try_suffixes=(".weight", ".bias"))] = data
    files = {}
    for scale in ("rtn", "search"):
        report = export_gguf(tiny_llama, tmp_path / f"{scale}.gguf", outtype="q8_0", q8_scale=scale, verify=False)
        assert report["q8_scale"] == scale
        files[scale] = {t.name: t for t in gguf.GGUFReader(tmp_path / f"{scale}.gguf").tensors
                        if t.tensor_type == gguf.GGMLQuantizationType.Q8_0}
    assert set(files["rtn"]) == set(files["search"]) and len(files["rtn"]) >= 12
    for name, tensor in files["search"].items():
        weights = source[name]
        expected = quantize_q8_0(weights, "search", name=name)
        assert np.array_equal(np.asarray(tensor.data).reshape(-1), expected.reshape(-1)), name
        rtn_bytes = np.asarray(files["rtn"][name].data).reshape(-1)
        assert np.array_equal(rtn_bytes, gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q8_0).reshape(-1))
        back_search = gguf.quants.dequantize(np.asarray(tensor.data), gguf.GGMLQuantizationType.Q8_0)
        back_rtn = gguf.quants.dequantize(np.asarray(files["rtn"][name].data), gguf.GGMLQuantizationType.Q8_0)
        assert ((back_search.reshape(weights.shape) - weights) ** 2).sum() <= \
            ((back_rtn.reshape(weights.shape) - weights) ** 2).sum(), name
