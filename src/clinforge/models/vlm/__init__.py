"""Multimodal models: compose a vision encoder, a connector and any causal LM; save, reload and check them.

Public API: ``build_vlm``, ``parse_vlm_spec``, ``load_vlm``, ``save_vlm``, ``VlmProcessor``, ``vlm_components``,
``vlm_family``, ``check_placeholders``, ``check_device_memory``, and the registries ``VISION_ENCODERS`` and
``CONNECTORS``. Importing the package registers clinforge's own model class with transformers' Auto classes.
"""

from clinforge.models.vlm.composed_model import ClinforgeVlmConfig, ClinforgeVlmForConditionalGeneration
from clinforge.models.vlm.connectors import CONNECTORS
from clinforge.models.vlm.llava_format import llava_exact, load_vlm, save_vlm
from clinforge.models.vlm.vision_encoders import VISION_ENCODERS
from clinforge.models.vlm.vlm_build import (
    build_vlm,
    check_device_memory,
    check_placeholders,
    parse_vlm_spec,
    vlm_components,
    vlm_family,
)
from clinforge.models.vlm.vlm_processor import VlmProcessor

__all__ = ["CONNECTORS", "VISION_ENCODERS", "ClinforgeVlmConfig", "ClinforgeVlmForConditionalGeneration",
           "VlmProcessor", "build_vlm", "check_device_memory", "check_placeholders", "llava_exact", "load_vlm",
           "parse_vlm_spec", "save_vlm", "vlm_components", "vlm_family"]
