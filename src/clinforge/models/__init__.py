"""Models: tiny models from configs, offline model registry, GGUF import/export, loading for training and serving."""

from clinforge.core import third_party_warnings  # noqa: F401  (peft/TRL's alias warnings; see there)
