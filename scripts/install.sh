#!/usr/bin/env bash
# Install clinforge (editable) with every optional part the tests use, into the active Python environment.
#
# Where torch comes from (torch is pinned to 2.13.0 by constraints.txt):
#   unset (the default; CI never sets it)  pip's configured index: on PyPI that is the default torch wheel, which
#                                          brings its CUDA packages (right for a machine with an NVIDIA GPU)
#   CLINFORGE_TORCH_INDEX=cpu              the PyTorch CPU wheel index, https://download.pytorch.org/whl/cpu:
#                                          no CUDA packages (right for an ordinary machine without a GPU)
#   CLINFORGE_TORCH_INDEX=cu126 (etc.)     that PyTorch CUDA index, https://download.pytorch.org/whl/cu126
#   CLINFORGE_TORCH_INDEX=https://...      any other index URL
# Which optional parts: CLINFORGE_EXTRAS (default "all", what the tests need; scripts/demo.sh asks for the parts
# the main job uses, so it never compiles llama.cpp).
# pip prints what it collects and downloads (no -q): the first install takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a PIP <<< "${CLINFORGE_PIP:-python3 -m pip}"  # CLINFORGE_PIP: the pip command, e.g. "uv pip"

torch_args=()
case "${CLINFORGE_TORCH_INDEX:-}" in
  "") ;;
  http://*|https://*|file://*) torch_args=(--index-url "$CLINFORGE_TORCH_INDEX") ;;
  cpu|cu[0-9]*|rocm[0-9]*) torch_args=(--index-url "https://download.pytorch.org/whl/$CLINFORGE_TORCH_INDEX") ;;
  *) echo "CLINFORGE_TORCH_INDEX=$CLINFORGE_TORCH_INDEX: expected cpu, cuXYZ, rocmX.Y or an index URL" >&2; exit 2 ;;
esac

echo "== [1/3] pip itself"
"${PIP[@]}" install --upgrade pip
echo "== [2/3] torch 2.13.0 from ${torch_args[1]:-the configured index}"
"${PIP[@]}" install ${torch_args[@]+"${torch_args[@]}"} -c constraints.txt torch
extras="${CLINFORGE_EXTRAS:-all}"
echo "== [3/3] clinforge with the optional parts [$extras]"
# llama-cpp-python (extra "edge") has no Linux wheel on PyPI: pip builds llama.cpp from source once (~10 minutes
# on 2 cores, a C++ compiler needed) and keeps the wheel in its cache, so later installs reuse it. The vision
# (llava/mtmd) part is not needed by the text backend: skipping it shortens the build. AMX is compiled out:
# llama.cpp's native build turns on its AMX int8 backend on Intel Sapphire Rapids and later, and that backend
# crashed every decode on such a VM (segfault in llama_decode, 2026-12-04; ggml-org/llama.cpp#20824); the flags are
# no-ops on CPUs without AMX. pip keys its cache of built wheels by the sdist, not by CMAKE_ARGS, so a wheel built
# earlier with AMX would be reinstalled as it is: the check after the install rebuilds it, without the cache.
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF '-DCMAKE_C_FLAGS=$no_amx' '-DCMAKE_CXX_FLAGS=$no_amx'}"
"${PIP[@]}" install -c constraints.txt -e ".[$extras]"
# Importing the binding and asking what it was built with runs no model code, so it cannot hit the crash.
if python3 -c 'import sys, llama_cpp; sys.exit(b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info())' \
    2>/dev/null; then
  version="$(python3 -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
  echo "== llama-cpp-python $version came from a cached build with llama.cpp's AMX backend: rebuilding it without"
  no_cache=(--no-cache-dir)
  [[ "${PIP[0]}" == uv ]] && no_cache=(--no-cache)
  "${PIP[@]}" install "${no_cache[@]}" --force-reinstall --no-deps "llama-cpp-python==$version"
fi
echo "== installed: $(python3 -c 'import clinforge, torch; print("clinforge", clinforge.__version__, "| torch", torch.__version__, "| CUDA", torch.version.cuda or "none")')"
