"""Transforms: named steps over streams of Records (see ``base.py``); each module registers itself when imported.

Built-in names are declared here so that ``TRANSFORMS.get("dedup")`` imports only the dedup module.
"""

from clinforge.data.transforms.base import TRANSFORMS, Transform, get_transform

for _name, _module in {
    "deid": "clinforge.data.transforms.deid",
    "dedup": "clinforge.data.transforms.dedup",
    "contamination": "clinforge.data.transforms.contamination",
    "image_contamination": "clinforge.data.transforms.image_contamination",
    "filter": "clinforge.data.transforms.filters",
    "chat_format": "clinforge.data.transforms.chat_format",
    "split": "clinforge.data.transforms.split",
    "make_preference": "clinforge.data.transforms.preference",
}.items():
    TRANSFORMS.add_builtin(_name, _module)

__all__ = ["TRANSFORMS", "Transform", "get_transform"]
