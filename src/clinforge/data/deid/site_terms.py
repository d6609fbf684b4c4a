"""A site's own lists: the staff directory, patient registry names and local places that are PHI wherever they occur,
and local words that must never be masked.

General lexicons cannot know that ``Okafor`` is a nurse on ward 4 or that ``Wexford 2`` is a unit of the hospital;
the hospital's directories do. Rule-based de-identifiers made for clinical notes use such lists (``deid.pl`` ships
with lists of the institution's clinicians and locations; Philter takes a blacklist and a whitelist), and a site
that runs clinforge has them too. This module reads them from one file and gives ``Deidentifier`` a recognizer
(``site_terms``) and an allow-list.

**The file** (``.txt``/``.tsv``, UTF-8): one entry a line, ``TYPE<TAB>term`` or ``TYPE: term``; ``#`` starts a
comment line; blank lines are skipped. ``TYPE`` is an entity type of ``ENTITY_TYPES`` (``NAME``, ``LOCATION``,
``PHONE``, ``ID``, ...) or ``KEEP``. A ``.csv`` file has a header with the columns ``type`` and ``term``.

**Matching**: a term matches in any letter case where its words (runs of letters and digits) occur in order, each
whole, separated by at most three other characters: ``St. Brigid`` matches ``ST BRIGID`` and ``st.brigid``,
``Okafor-Bell`` matches ``okafor bell``. A ``NAME`` of several words also matches surname first (``Okafor, Jane``),
and each of its words matches alone. A name word that is *ambiguous* (shorter than 3 letters, or an English word,
clinical term or common first name: ``english_words``, ``allow_words``) matches alone only right after a title
(``dr``, ``mr``, ``rn``, ...): a nurse called Foley must not take every ``foley`` catheter out of the notes, nor
one called Jane every ``jane``; a name of one ambiguous word is held to the same rule, and an initial never
matches alone. Other types match as listed.
``KEEP`` terms are allowed: a detected span whose whole text is such a term (any case) is kept.

Terms are PHI: no error message, log line or explanation quotes one; they name the file and line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.data.deid.lexicons import trie_regex
from clinforge.data.deid.recognizers import RECOGNIZERS, Recognizer
from clinforge.data.deid.spans import ENTITY_TYPES, Span

_WORD = re.compile(r"[^\W_]+")
_APOSTROPHE = re.compile(r"['’]")
MAX_GAP = 3  # characters between two words of a term: "St. Brigid" (". "), "Okafor - Bell" (" - ")
_WORD_BEFORE = re.compile(rf"(?<![^\W_])([^\W_]+)([\W_]{{1,{MAX_GAP}}})\Z")  # a title right before a name
KEEP = "KEEP"


@dataclass
class SiteTerms:
    """Entries of a site list: ``phi`` holds ``(TYPE, term, line)``, ``keep`` the allowed terms (lower case).

    Example:
        >>> terms = SiteTerms.from_mapping({"NAME": ["Jane Okafor"], "KEEP": ["Foley"]})
        >>> terms.phi, sorted(terms.keep)
        ([('NAME', 'Jane Okafor', 1)], ['foley'])
    """

    phi: list[tuple[str, str, int]] = field(default_factory=list)
    keep: set[str] = field(default_factory=set)
    source: str = "site terms"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Iterable[str]], source: str = "site terms") -> SiteTerms:
        """Entries from ``{TYPE: [term, ...]}``, numbered in order from 1 (for messages)."""
        out = cls(source=source)
        n = 0
        for kind, terms in mapping.items():
            for term in terms:
                n += 1
                out._add(kind, term, n, key="type")
        return out

    @classmethod
    def from_file(cls, path: str | Path) -> SiteTerms:
        """Read a site list (see the module docstring); a bad line is a ConfigError naming the file and line.

        Example:
            >>> import tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "site.txt")
            >>> _ = open(p, "w").write("# staff\\nNAME\\tJane Okafor\\nLOCATION: Wexford 2\\nKEEP: Foley\\n")
            >>> [(t, line) for t, _, line in SiteTerms.from_file(p).phi]
            [('NAME', 2), ('LOCATION', 3)]
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError("no such site-terms file", file=str(path))
        out = cls(source=str(path))
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(text.splitlines())
            missing = {"type", "term"} - {c.strip().lower() for c in reader.fieldnames or []}
            if missing:
                raise ConfigError(f"a site-terms CSV needs the columns type and term (missing: "
                                  f"{', '.join(sorted(missing))})", file=str(path), line=1)
            for row in reader:
                row = {(k or "").strip().lower(): v for k, v in row.items()}
                out._add(row.get("type") or "", row.get("term") or "", reader.line_num, key="type")
            return out
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            kind, sep, term = line.partition("\t") if "\t" in line else line.partition(":")
            if not sep:
                raise ConfigError("expected TYPE<TAB>term or TYPE: term", file=str(path), line=n)
            out._add(kind, term, n, key="type")
        return out

    def _add(self, kind: str, term: str, line: int, key: str) -> None:
        kind, term = kind.strip().upper(), term.strip()
        where = {"file": self.source, "line": line}
        if kind != KEEP and kind not in ENTITY_TYPES:
            raise ConfigError(f"unknown type {kind!r}; valid: {', '.join(ENTITY_TYPES)}, {KEEP}", key=key, **where)
        if not _WORD.search(term):  # the term itself is not quoted: it is PHI
            raise ConfigError("the term has no letter or digit", key="term", **where)
        if kind == KEEP:
            self.keep.add(term.lower())
        else:
            self.phi.append((kind, term, line))

    def check(self) -> None:
        """A term listed both as PHI and as ``KEEP`` is a ConfigError naming the line (which to trust is unclear)."""
        for kind, term, line in self.phi:
            if term.lower() in self.keep:
                raise ConfigError(f"the term of this {kind} line is also listed as {KEEP}", file=self.source,
                                  line=line, key="term")


# words after which an ambiguous listed name word is taken as the name (a title, a role, a credential)
TITLES = frozenset({"dr", "doctor", "mr", "mrs", "ms", "miss", "mx", "prof", "nurse", "rn", "np", "pa", "md",
                    "sister", "father", "rev", "attending", "resident", "fellow", "intern"})


def ambiguous_name_word(word: str) -> bool:
    """True for a name word that alone is no evidence of the name: under 3 letters, an English word, a clinical
    term or a common first name (``lexicons.english_words``, ``lexicons.allow_words``).

    Example:
        >>> ambiguous_name_word("foley"), ambiguous_name_word("jane"), ambiguous_name_word("okafor")
        (True, True, False)
    """
    from clinforge.data.deid.lexicons import allow_words, english_words

    return len(word) < 3 or not word.isalpha() or word in english_words() or word in allow_words()


class SiteTermsRecognizer(Recognizer):
    """Spans of the PHI terms of a site list (``SiteTerms`` or a file path), in any letter case.

    Args:
        site_terms: a ``SiteTerms``, or the path of a site-terms file (``SiteTerms.from_file``).

    Example:
        >>> r = SiteTermsRecognizer(SiteTerms.from_mapping({"NAME": ["Jane Okafor"], "LOCATION": ["Wexford 2"]}))
        >>> text = "per dr okafor, to WEXFORD 2. Okafor, Jane aware; jane at bedside"
        >>> [(s.entity_type, text[s.start:s.end]) for s in r.analyze(text)]
        [('NAME', 'okafor'), ('LOCATION', 'WEXFORD 2'), ('NAME', 'Okafor, Jane')]
    """

    name = "site_terms"
    entities = tuple(ENTITY_TYPES)
    option_names = ("site_terms",)

    def __init__(self, site_terms: SiteTerms | str | Path | None = None, **options: Any):
        super().__init__(**options)
        if site_terms is None:
            raise ConfigError("the site_terms recognizer needs a site-terms file (site_terms: PATH)",
                              key="site_terms")
        terms = site_terms if isinstance(site_terms, SiteTerms) else SiteTerms.from_file(site_terms)
        terms.check()
        self.terms = terms
        # first word -> [(words, type, needs a title before it, explanation)], longest first: the longest listed
        # term at a word wins; a term found both with and without the title condition keeps the weaker condition
        index: dict[str, list[tuple[tuple[str, ...], str, bool, str]]] = {}
        seen: dict[tuple[tuple[str, ...], str], bool] = {}

        def add(words: tuple[str, ...], kind: str, titled: bool, why: str) -> None:
            key = (words, kind)
            if key in seen and (titled or not seen[key]):
                return
            seen[key] = titled
            entries = index.setdefault(words[0], [])
            entries[:] = [e for e in entries if (e[0], e[1]) != key]
            entries.append((words, kind, titled, why))

        self.ambiguous = 0  # listed names of one ambiguous word: found only after a title (a count for the user)
        for kind, term, line in terms.phi:
            words = tuple(w.lower() for w in _WORD.findall(term))
            why = f"listed in {Path(terms.source).name}, line {line}"
            if kind != "NAME":
                add(words, kind, False, why)
                continue
            single_ambiguous = len(words) == 1 and ambiguous_name_word(words[0])
            self.ambiguous += single_ambiguous
            if len(words) > 1 or len(words[0]) > 1:  # a listed initial alone matches nothing
                add(words, kind, single_ambiguous, why)
            if len(words) > 1:
                add((words[-1], *words[:-1]), kind, False, why + " (surname first)")
                for w in words:
                    if len(w) > 1:  # an initial alone says nothing, even after a title ("Dr.s", "RN's")
                        add((w,), kind, ambiguous_name_word(w), why + " (one word of the name)")
        for entries in index.values():
            entries.sort(key=lambda e: -len(e[0]))
        self._index = index
        self._longest = max((len(e[0]) for entries in index.values() for e in entries), default=0)
        self._first = re.compile(r"(?<![^\W_])(?:" + trie_regex(sorted(index)) + r")(?![^\W_])",
                                 re.IGNORECASE) if index else None

    def describe(self) -> str:
        """What the list holds, in counts only (terms are PHI), for a command's summary line.

        Example:
            >>> terms = SiteTerms.from_mapping({"NAME": ["Jane Okafor", "Hope"], "KEEP": ["Foley"]})
            >>> SiteTermsRecognizer(terms).describe()
            '2 PHI terms, 1 KEEP; 1 one-word name is an ordinary word or an initial: found only after a title'
        """
        n, k, a = len(self.terms.phi), len(self.terms.keep), self.ambiguous
        out = f"{n} PHI term{'s' * (n != 1)}, {k} KEEP"
        if a == 1:
            out += "; 1 one-word name is an ordinary word or an initial: found only after a title"
        elif a > 1:
            out += f"; {a} one-word names are ordinary words or initials: found only after a title"
        return out

    def analyze(self, text: str) -> list[Span]:
        # The first words of all terms are one prefix-tree regex, scanned in C; only at its hits are the words
        # after (a multi-word term) or the word before (a title) read in Python. Tokenising every word of every
        # note in Python instead cost ~8% of the default rules' time on the PhysioNet notes.
        if self._first is None:
            return []
        index, longest = self._index, self._longest
        out: list[Span] = []
        covered = 0  # the end of the last span: a word inside it ("okafor" of "jane okafor") starts nothing new
        for m in self._first.finditer(text):
            start, end = m.span()
            if start < covered:
                continue
            following: list[re.Match[str]] | None = None
            for words, kind, titled, why in index[m.group().lower()]:
                n = len(words)
                if n > 1:
                    if following is None:
                        following = list(islice(_WORD.finditer(text, end), longest - 1))
                    if len(following) < n - 1:
                        continue
                    prev_end, ok = end, True
                    for k in range(1, n):
                        t = following[k - 1]
                        if t.start() - prev_end > MAX_GAP or t.group().lower() != words[k]:
                            ok = False
                            break
                        prev_end = t.end()
                    if not ok:
                        continue
                    stop = following[n - 2].end()
                else:
                    stop = end
                if titled:
                    before = _WORD_BEFORE.search(text, max(0, start - 20), start)
                    if before is None or before.group(1).lower() not in TITLES or _APOSTROPHE.search(before.group(2)):
                        continue  # "RN's", "Dr's" are no title before a name
                out.append(self.span(start, stop, kind, 0.95, why))
                covered = stop
                break
        return out


RECOGNIZERS.register("site_terms", SiteTermsRecognizer)
