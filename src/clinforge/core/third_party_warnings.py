"""Warnings of the libraries clinforge builds on that ask the CALLER to change and that a clinforge user cannot act on.

peft (``PeftModel.__init__``) and TRL (``disable_gradient_checkpointing``, ``unwrap_model_for_generation``) still use
transformers' renamed ``is_gradient_checkpointing`` and ``gradient_checkpointing_enable/disable``, so every path
that wraps a model in peft (training a LoRA stage, merging a finished run's adapters on ``--resume``, loading an
adapter for evaluation) and every DPO/RL stage printed a FutureWarning asking for a rename that the user cannot make
and that changes nothing (the aliases do the same). clinforge itself uses only the current names
(``tests/test_train_examples.py`` checks its source), so ignoring exactly these messages hides nothing that concerns
a clinforge user; every other warning still shows. Imported by ``clinforge.train`` and ``clinforge.models``, the two
packages that reach peft and TRL.
"""

from __future__ import annotations

import warnings

CHECKPOINTING_ALIAS = r"`(is_gradient_checkpointing|gradient_checkpointing_(en|dis)able)` is deprecated"

warnings.filterwarnings("ignore", message=CHECKPOINTING_ALIAS, category=FutureWarning)
