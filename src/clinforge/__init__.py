"""clinforge: build, evaluate and safely deploy medical LLMs and MLLMs on your own hardware."""

import os as _os

__version__ = "0.1.0"

# transformers 5.2x turns "hub kernels" on by default: on a CUDA device, from_pretrained downloads compiled layers
# (e.g. kernels-community/rotary) from the Hugging Face Hub and swaps them into the model. On an offline clinical
# machine that load fails (seen on a GPU with transformers 5.25, 2026-12-04: "could not verify publisher trust
# status"), and where it succeeds, binaries fetched at run time replace the code the team reviewed. Off unless the
# user asks for it: USE_HUB_KERNELS=1 in the environment is respected.
_os.environ.setdefault("USE_HUB_KERNELS", "0")
