"""clinforge: build, evaluate and safely deploy medical LLMs and MLLMs on your own hardware."""

import os as _os

__version__ = "0.1.0"

# transformers 5.2x turns "hub kernels" on by default: on a CUDA device, from_pretrained downloads compiled layers
# (e.g. kernels-community/rotary) from the Hugging Face Hub and swaps them into the model. On an offline clinical
# machine that load fails (seen on a GPU with transformers 5.25, 2026-12-04: "could not verify publisher trust
# status"), and where it succeeds, binaries fetched at run time replace the code the team reviewed. Off unless the
# user asks for it: USE_HUB_KERNELS=1 in the environment is respected.
_os.environ.setdefault("USE_HUB_KERNELS", "0")


def _quiet_deepspeed_cpu_notice() -> None:
    # With deepspeed installed (the `deepspeed` extra), accelerate imports it from every save_pretrained, and on a
    # machine without a GPU deepspeed logs "Setting accelerator to CPU ..." through a handler on *stdout*:
    # `path=$(clinforge models fetch NAME)` captured that line with the path (2026-12-04). The notice says nothing a
    # CPU user needs; a filter on deepspeed's logger (which deepspeed keeps when it configures the logger on import)
    # drops that one message and nothing else.
    import logging

    class _DropCpuNotice(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith("Setting accelerator to CPU")

    logging.getLogger("DeepSpeed").addFilter(_DropCpuNotice())


_quiet_deepspeed_cpu_notice()
