#!/usr/bin/env bash
# The checks that need a CUDA GPU (QLoRA, bf16 training on the GPU, FSDP through accelerate launch), for a lent GPU
# machine that has PyTorch but no package registry. CI has no GPU: these tests skip there.
#
# Prepare here (where pip reaches the registries), then run there from the repository root:
#   .whl/      wheels the GPU machine lacks, for its Python (3.12): trl, datasets, dill, multiprocess, peft,
#              accelerate, transformers + huggingface-hub + kernels + httpx2/httpcore2, pydantic(-core),
#              datasketch, bitsandbytes (its wheel may be cut down to the CUDA build the machine needs),
#              deepspeed + hjson + py-cpuinfo (pip wheel --no-deps builds deepspeed's pure-Python wheel)
#   .devdata/  the real data the tests read: pubmedqa/data/ori_pqal.json
#   bash scripts/device_checks.sh            # logs under $OUT (default /tmp/device-checks)
# Exit status: that of the GPU tests (the CPU learning tests re-run on the GPU are reported, not gating).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-checks}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels failed" >&2; exit 2; }
  export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} CLINFORGE_DATA=${CLINFORGE_DATA:-$PWD/.devdata} PYTHONUNBUFFERED=1
python3 - <<'EOF' | tee "$OUT/versions.txt"
import importlib
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
for name in ("transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes"):
    print(name, importlib.import_module(name).__version__)
EOF
date -u | tee "$OUT/date.txt"
start=$SECONDS
timeout 240 python3 -m pytest -q -rs -s -p no:cacheprovider tests/test_gpu_paths.py \
  tests/test_fsdp_save.py::test_fsdp_recipe_on_gpus_saves_a_full_model tests/test_deepspeed_save.py 2>&1 | tee "$OUT/gpu_tests.log"
status=${PIPESTATUS[0]}
echo "GPU tests: exit $status in $((SECONDS - start)) s" | tee -a "$OUT/gpu_tests.log"
start=$SECONDS
timeout 120 python3 -m pytest -q -rs -p no:cacheprovider tests/test_learning.py -k "not rlaif and not dp_sgd" 2>&1 \
  | tee "$OUT/learning_on_gpu.log" | tail -15
echo "learning tests on the GPU: exit ${PIPESTATUS[0]} in $((SECONDS - start)) s" | tee -a "$OUT/learning_on_gpu.log"
exit "$status"
