"""Registry of training stages: ``STAGES`` maps a recipe ``type`` to a ``Stage`` subclass.

Built-in stages are imported lazily on first use. Other stages register themselves on import, or declare their
module with ``STAGES.add_builtin(name, module)``; plug-in packages use the ``clinforge.plugins`` entry point.

Example:
    >>> sorted(n for n in STAGES.names() if n in ("cpt", "sft"))
    ['cpt', 'sft']
"""

from __future__ import annotations

from clinforge.core.registry import Registry
from clinforge.train.stages.base import (
    AFTER_STAGE_HOOKS,
    NoOptions,
    Stage,
    StageContext,
    StageResult,
    register_after_stage,
)

STAGES: Registry[type[Stage]] = Registry(
    "stage",
    builtins={
        "cpt": "clinforge.train.stages.lm",
        "ift": "clinforge.train.stages.lm",
        "sft": "clinforge.train.stages.lm",
        "rm": "clinforge.train.align.rm",
        "rl": "clinforge.train.align.rl",
        "rlaif": "clinforge.train.align.rlaif",
        "dpo": "clinforge.train.align.dpo",
        "vlm_align": "clinforge.train.stages.vlm",
        "vlm_sft": "clinforge.train.stages.vlm",
    },
)

__all__ = ["STAGES", "Stage", "StageContext", "StageResult", "NoOptions", "AFTER_STAGE_HOOKS",
           "register_after_stage"]
