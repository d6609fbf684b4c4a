"""Keyed pseudonyms for patient ids (MRNs are identifiers too): one class for the deid transform and the file CLI.

A patient id becomes ``pt-`` + the first 16 hex digits of HMAC-SHA256(key, id). The key is ``$CLINFORGE_DEID_KEY``
when it is set (ids stay linkable across runs by whoever holds the key), else a random key made for this object and
never written anywhere (ids are consistent within the run, so patient-level splits still work, and unlinkable
across runs). A plain hash would not do: MRNs are short, and hashing every possible MRN takes seconds.

Example:
    >>> import os; os.environ["CLINFORGE_DEID_KEY"] = "k"
    >>> p = PatientPseudonymizer(); p.pseudonym("12345"), p.key_source
    ('pt-3f5429540988d2d8', '$CLINFORGE_DEID_KEY')
    >>> del os.environ["CLINFORGE_DEID_KEY"]
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

KEY_ENV = "CLINFORGE_DEID_KEY"
PATIENT_ID_MODES = ("pseudonymize", "keep")


class PatientPseudonymizer:
    """``pseudonym(patient_id)`` under one key (see the module docstring); ``key_source`` says where it came from."""

    def __init__(self) -> None:
        env_key = os.environ.get(KEY_ENV)
        self._key = env_key.encode("utf-8") if env_key else secrets.token_bytes(32)
        self.key_source = f"${KEY_ENV}" if env_key else "random per-run key (not stored)"

    @property
    def per_run(self) -> bool:
        """Whether the pseudonyms change from run to run (a random key)."""
        return self.key_source != f"${KEY_ENV}"

    @property
    def key_check(self) -> str | None:
        """A tag of the key that reveals nothing of it (HMAC of a fixed text), for a resumed run to tell that it
        pseudonymises with the same key as the run it continues; ``None`` for a per-run key (never resumed).

        Example:
            >>> import os; os.environ["CLINFORGE_DEID_KEY"] = "k"
            >>> PatientPseudonymizer().key_check == PatientPseudonymizer().key_check
            True
            >>> del os.environ["CLINFORGE_DEID_KEY"]; PatientPseudonymizer().key_check is None
            True
        """
        if self.per_run:
            return None
        return hmac.new(self._key, b"clinforge: the key of a resumed run", hashlib.sha256).hexdigest()[:16]

    def pseudonym(self, patient_id: str, prefix: str = "pt-") -> str:
        """The keyed pseudonym of ``patient_id`` (or of a record id or file name, with another ``prefix``; the key
        is the same, and the prefix is part of the message, so one value gets unrelated pseudonyms as each).

        Example:
            >>> p = PatientPseudonymizer(); p.pseudonym("7") == p.pseudonym("7") != p.pseudonym("8")
            True
            >>> p.pseudonym("7", prefix="rec-")[:4]
            'rec-'
        """
        message = patient_id if prefix == "pt-" else f"{prefix}\x1f{patient_id}"  # pt- ids stay as they were
        digest = hmac.new(self._key, message.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"{prefix}{digest[:16]}"

    def describe(self) -> str:
        """One line for a data card or a summary (never the key)."""
        return f"pseudonymized: HMAC-SHA256 with {self.key_source}"
