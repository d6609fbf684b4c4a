"""Evaluation tasks: registry ``TASKS`` (lazy built-ins), groups, YAML task files.

Built-in multiple-choice tasks (lm-eval 0.4.13 prompts): medqa, medmcqa, pubmedqa, mmlu_anatomy,
mmlu_clinical_knowledge, mmlu_college_biology, mmlu_college_medicine, mmlu_medical_genetics,
mmlu_professional_medicine; group multimedqa. Generative: medquad, mts_dialog, aci_bench, medec, iu_xray.
VQA (images): vqa_rad, slake, pathvqa and their ``*_llava_med_legacy`` scoring twins.

Example:
    >>> from clinforge.eval.tasks import TASKS
    >>> TASKS.get("medqa").reader
    'medqa'
"""

from clinforge.eval.tasks.base import GROUPS, MODES, TASKS, Task, all_task_names, expand_tasks, get_task

_MCQ = ["medqa", "medmcqa", "pubmedqa"] + [f"mmlu_{s}" for s in (
    "anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
    "professional_medicine")]
for _name in _MCQ:
    TASKS.add_builtin(_name, "clinforge.eval.tasks.mcq")
for _name in ("medquad", "mts_dialog", "aci_bench", "medec", "iu_xray"):
    TASKS.add_builtin(_name, "clinforge.eval.tasks.generative")
for _name in ("vqa_rad", "slake", "pathvqa"):
    TASKS.add_builtin(_name, "clinforge.eval.tasks.vqa")
    TASKS.add_builtin(f"{_name}_llava_med_legacy", "clinforge.eval.tasks.vqa")
GROUPS["multimedqa"] = list(_MCQ)

__all__ = ["TASKS", "GROUPS", "MODES", "Task", "get_task", "expand_tasks", "all_task_names"]
