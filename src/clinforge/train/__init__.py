"""Training: recipes of stages (cpt, ift, sft here; rm, rl, rlaif, dpo from the alignment modules), methods
(full, LoRA, QLoRA, freezing), differential privacy, exact resume and distributed runs.

Public API: ``clinforge.train.recipe.Recipe`` / ``load_recipe``, ``clinforge.train.stages.STAGES`` / ``Stage``,
``clinforge.train.pipeline.run_pipeline`` / ``run_recipe_file``.
"""

from clinforge.core import third_party_warnings  # noqa: F401  (peft/TRL's alias warnings; see there)
