"""Realistic, consistent replacements for detected PHI (``surrogate`` mode).

* Every replacement is a pure function of (key, seed, patient id, entity type, original text), an HMAC-SHA256: the
  same person gets the same surrogate in every record of that patient. The KEY keeps it one-way: a function of the
  seed alone (which a recipe, a run record and a data card show, and which defaults to 0) let anyone recompute a
  patient's date shift and move every date back, or list the names a surrogate name can stand for. The key is
  ``$CLINFORGE_DEID_KEY`` when set (surrogates then agree across runs and processes for whoever holds it), else a
  random key made for the generator and never written anywhere (surrogates agree within the run only).
* Names are replaced token by token ("Martha Collins" and later "Ms. Collins" keep one surname). A word alone keeps
  the role (given name or surname) and gender it first took for that patient, in a full name or alone.
* Dates move by ONE offset per patient (``date_shift_days``), so intervals between a patient's dates survive;
  the original format is kept (``01/02/2023`` stays ``MM/DD/YYYY``, ``Jan 2nd`` stays ``Mon Dth``).
  Day-first vs month-first: a first number > 12 means day-first, otherwise month-first (US) is assumed.
* Ages over 89 become "90+" (the Safe Harbor aggregate); numbers and codes keep their shape (digit for digit,
  letter for letter), other types come from faker (MIT licence) seeded from the same hash.

A date that cannot be parsed (e.g. 31/31/2020) is masked as ``[DATE]`` and counted in ``unparsed_dates``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import os
import random
import re
import secrets
import string

from clinforge.data.deid.facility_names import FACILITY_AT_END, FACILITY_AT_START
from clinforge.data.deid.lexicons import person_names
from clinforge.data.deid.patient_ids import KEY_ENV

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_MONTH_WORD = re.compile(r"(?i)\b(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
                         r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b")
_NUMERIC = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})$")
_GS1_AI = re.compile(r"(\(\d{2,4}\))")
_ISO = re.compile(r"^(\d{4})([/.-])(\d{1,2})\2(\d{1,2})(T\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?$")
# HL7 v2 / DICOM dates and timestamps: YYYYMMDD, then hours, minutes, seconds, fraction and offset as written
_COMPACT = re.compile(r"^((?:19|20|21)\d\d)(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])((?:[01]\d|2[0-3])(?:\d\d){0,2}(?:\.\d+)?)?"
                      r"([+-]\d{4})?$")
_MONTH_YEAR_NUM = re.compile(r"^(\d{1,2})([/-])(\d{4})$")
_MONTH_DAY_NUM = re.compile(r"^(\d{1,2})([/-])(\d{1,2})$")
ROLE_MEMORY_MAX = 500_000  # role-memory entries (~100 MB) before it starts again
_NUMBER = re.compile(r"(?<!\d)(\d{4}|\d{1,2})(st|nd|rd|th)?(?!\d)")


def _ordinal(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _padded_style(*parts: str) -> bool:
    """Zero-padded numbers? Yes if any part has a leading zero; no if any is one digit; else (12/25) assume yes."""
    if any(len(p) > 1 and p.startswith("0") for p in parts):
        return True
    return not any(len(p) == 1 for p in parts)


def _pad(value: int, like: str, padded: bool | None = None) -> str:
    padded = _padded_style(like) if padded is None else padded
    return f"{value:02d}" if padded else str(value)


def _month_like(month: int, like: str) -> str:
    full = _MONTHS[month - 1].capitalize()
    word = full if len(like.rstrip(".")) > 4 or like.lower() in ("june", "july") else full[:3]
    if like.lower().startswith("sept") and month == 9:
        word = "Sept"
    if like.isupper():
        return word.upper()
    if like.islower():
        return word.lower()
    return word


def _year_of(y: str) -> int:
    if len(y) == 4:
        return int(y)
    n = int(y)
    return 2000 + n if n < 70 else 1900 + n


def _year_like(year: int, like: str) -> str:
    return str(year) if len(like) == 4 else f"{year % 100:02d}"


def shift_date_text(text: str, days: int) -> str | None:
    """Shift the date written in ``text`` by ``days``, keeping its format; None if it cannot be parsed.

    Example:
        >>> shift_date_text("01/30/2023", 3), shift_date_text("2023-01-30", -30), shift_date_text("Jan 2nd", 1)
        ('02/02/2023', '2022-12-31', 'Jan 3rd')
        >>> shift_date_text("2023-01-30T10:22Z", 3), shift_date_text("20230130102200", 3)
        ('2023-02-02T10:22Z', '20230202102200')
    """
    try:
        return _shift(text, days)
    except ValueError:
        return None


def _shift(text: str, days: int) -> str | None:
    delta = dt.timedelta(days=days)
    s = text.strip()
    if m := _ISO.match(s):
        y, sep, mo, d, time = m.groups()
        new = dt.date(int(y), int(mo), int(d)) + delta
        pad = _padded_style(mo, d)
        return f"{new.year:04d}{sep}{_pad(new.month, mo, pad)}{sep}{_pad(new.day, d, pad)}{time or ''}"
    if m := _COMPACT.match(s):
        y, mo, d, time, offset = m.groups()
        new = dt.date(int(y), int(mo), int(d)) + delta
        return f"{new.year:04d}{new.month:02d}{new.day:02d}{time or ''}{offset or ''}"
    if m := _NUMERIC.match(s):
        a, sep, b, y = m.groups()
        day_first = int(a) > 12 or sep == "."  # dotted dates are day-first (European)
        mo, d = (b, a) if day_first else (a, b)
        new = dt.date(_year_of(y), int(mo), int(d)) + delta
        pad = _padded_style(a, b)
        first, second = (new.day, new.month) if day_first else (new.month, new.day)
        first, second = _pad(first, a, pad), _pad(second, b, pad)
        return f"{first}{sep}{second}{sep}{_year_like(new.year, y)}"
    if m := _MONTH_YEAR_NUM.match(s):
        mo, sep, y = m.groups()
        new = dt.date(int(y), int(mo), 15) + delta
        return f"{_pad(new.month, mo)}{sep}{new.year}"
    if m := _MONTH_DAY_NUM.match(s):
        a, sep, b = m.groups()
        day_first = int(a) > 12  # "22/7": the first number cannot be a month
        mo, d = (b, a) if day_first else (a, b)
        new = dt.date(2000, int(mo), int(d)) + delta  # a leap reference year keeps 2/29 valid
        pad = _padded_style(a, b)
        first, second = (new.day, new.month) if day_first else (new.month, new.day)
        return f"{_pad(first, a, pad)}{sep}{_pad(second, b, pad)}"
    mw = _MONTH_WORD.search(s)
    if mw is None:
        return None
    month = next(i for i, name in enumerate(_MONTHS, 1) if name.startswith(mw.group(1).lower()[:3]))
    rest = s[:mw.start()] + " " * (mw.end() - mw.start()) + s[mw.end():]
    numbers = list(_NUMBER.finditer(rest))
    year_match = next((n for n in numbers if len(n.group(1)) == 4), None)
    if year_match is None and len(numbers) >= 2:  # "12-Mar-21", "Sept 5th, '21": the later number is the year
        year_match = numbers[-1]
    dm = next((n for n in numbers if n is not year_match and len(n.group(1)) <= 2), None)
    year = _year_of(year_match.group(1)) if year_match else 2000
    day = int(dm.group(1)) if dm else 15
    new = dt.date(year, month, day) + delta
    pieces = [(mw.start(), mw.end(), _month_like(new.month, mw.group(1)))]
    if year_match is not None:
        pieces.append((year_match.start(1), year_match.end(1), _year_like(new.year, year_match.group(1))))
    if dm is not None:
        repl = _pad(new.day, dm.group(1), len(dm.group(1)) == 2 and dm.group(1).startswith("0")) + (
            _ordinal(new.day) if dm.group(2) else "")
        pieces.append((dm.start(), dm.end(), repl))
    out = s
    for start, end, repl in sorted(pieces, reverse=True):
        out = out[:start] + repl + out[end:]
    return out


def match_case(original: str, new: str) -> str:
    """``new`` in capitals when ``original`` is, in lower case when it is: a surrogate in a note written in one case
    must not stand out ("dr. harding" -> "dr. davis", not "dr. Davis").

    Example:
        >>> match_case("HARDING", "Davis"), match_case("harding", "Davis"), match_case("Harding", "Davis")
        ('DAVIS', 'davis', 'Davis')
    """
    if original.isupper():
        return new.upper()
    if original.islower():
        return new.lower()
    return new


def shape_preserving(original: str, rng: random.Random) -> str:
    """Replace each digit by a digit and each letter by a letter of the same case; keep punctuation.

    Example:
        >>> out = shape_preserving("AB-1234", random.Random(0))
        >>> len(out), out[2], out[:2].isupper(), out[3:].isdigit()
        (7, '-', True, True)
    """
    chars = []
    for c in original:
        if c.isdigit():
            chars.append(rng.choice(string.digits))
        elif c.isalpha() and c.isascii():
            chars.append(rng.choice(string.ascii_uppercase if c.isupper() else string.ascii_lowercase))
        else:
            chars.append(c)
    return "".join(chars)


class SurrogateGenerator:
    """Deterministic surrogates keyed by (key, seed, patient id, type, original); ``key`` defaults to
    ``$CLINFORGE_DEID_KEY`` or, unset, a random per-run key (module docstring). ``key_source`` says which.

    Example:
        >>> g = SurrogateGenerator(seed=0)
        >>> g.replace("NAME", "Martha Collins", "p1") == g.replace("NAME", "Martha Collins", "p1")
        True
        >>> g.replace("AGE", "93", "p1")
        '90+'
    """

    def __init__(self, seed: int = 0, *, key: str | bytes | None = None, max_shift_days: int = 365 * 2,
                 locale: str = "en_US"):
        from faker import Faker

        self.seed = seed
        if key is None:
            env_key = os.environ.get(KEY_ENV)
            key = env_key or secrets.token_bytes(32)
            self.key_source = f"${KEY_ENV}" if env_key else "random per-run key (not stored)"
        else:
            self.key_source = "key given by the caller"
        self._key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        self.max_shift_days = max_shift_days
        self.fake = Faker(locale)
        self._first, self._last = person_names()
        self._cache: dict[tuple, str] = {}  # a pure cache (outputs follow from the inputs and the role memory)
        # The role memory: a keyed tag of (patient, lower-case token) -> (role, gender) the token first took, in a full
        # name or alone; a lone word keeps it later. Tags, not names, so that a stopped run can save it (a resumed
        # ``data prepare`` restores it, ``roles_state``) without writing a name to disk. Set once per tag, in insertion
        # order, and emptied only at ROLE_MEMORY_MAX entries (the cache with it), so its state is a (generation,
        # length) mark.
        self._name_roles: dict[bytes, tuple[str, str | None]] = {}
        self._previous_roles: dict[bytes, tuple[str, str | None]] = {}
        self._roles_generation = 0
        self.unparsed_dates = 0

    def date_shift_days(self, patient_id: str | None) -> int:
        """The one offset (days, never 0) applied to every date of this patient."""
        rng = random.Random(self._int("date-shift", patient_id or ""))
        return rng.choice((-1, 1)) * rng.randint(1, self.max_shift_days)

    @property
    def per_run(self) -> bool:
        """Whether the surrogates change from run to run (a random key)."""
        return self.key_source.startswith("random")

    def _int(self, *parts: object) -> int:
        """A 64-bit integer from HMAC-SHA256(key, seed and parts): stable for one key, unguessable without it."""
        message = "\x1f".join(str(p) for p in (self.seed, *parts)).encode("utf-8")
        return int.from_bytes(hmac.new(self._key, message, hashlib.sha256).digest()[:8], "big")

    def _role_tag(self, patient: str, token: str) -> bytes:
        message = "\x1f".join((str(self.seed), "role", patient, token)).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()[:16]

    def _remember_role(self, tag: bytes, role: str, gender: str | None) -> None:
        """Set the role of a tag once; at ROLE_MEMORY_MAX tags the memory starts again (the cache too, whose
        entries followed from it), keeping the previous generation for a checkpoint taken before the switch."""
        if tag in self._name_roles:
            return
        if len(self._name_roles) >= ROLE_MEMORY_MAX:
            self._previous_roles, self._name_roles = self._name_roles, {}
            self._roles_generation += 1
            self._cache.clear()
        self._name_roles[tag] = (role, gender)

    @property
    def key_check(self) -> str | None:
        """A tag of the key that reveals nothing of it, for a resumed run to tell that it continues under the same
        key; ``None`` for a random per-run key (such a run is never resumed)."""
        if self.per_run:
            return None
        return hmac.new(self._key, b"clinforge: the surrogate key of a resumed run", hashlib.sha256).hexdigest()[:16]

    def roles_mark(self) -> tuple[int, int]:
        """Where the role memory stands (generation, entries): cheap, taken after every record of a resumable run."""
        return self._roles_generation, len(self._name_roles)

    def roles_state(self, mark: tuple[int, int]) -> dict[str, object]:
        """The role memory as it was at ``mark`` (JSON: keyed tags, roles and genders; no name), for a checkpoint.

        Example:
            >>> g = SurrogateGenerator(key="k")
            >>> _ = g.replace("NAME", "Quenvaro Dastrelik", "p1")
            >>> h = SurrogateGenerator(key="k")
            >>> h.restore_roles(g.roles_state(g.roles_mark()))
            >>> h.replace("NAME", "quenvaro", "p1") == g.replace("NAME", "quenvaro", "p1")
            True
        """
        generation, n = mark
        if generation == self._roles_generation:
            memory = self._name_roles
        elif generation == self._roles_generation - 1:
            memory = self._previous_roles
        else:
            raise RuntimeError(f"the role memory moved on two generations since mark {mark}")
        entries = [[tag.hex(), role, gender] for tag, (role, gender) in itertools.islice(memory.items(), n)]
        return {"generation": generation, "roles": entries}

    def restore_roles(self, state: dict) -> None:
        """Continue from a saved role memory (``roles_state``); the generator must hold the same key and seed."""
        self._name_roles = {bytes.fromhex(tag): (role, gender) for tag, role, gender in state["roles"]}
        self._previous_roles = {}
        self._roles_generation = int(state["generation"])
        self._cache.clear()

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(self._int(*parts))

    def _faker(self, *parts: object):
        self.fake.seed_instance(self._int(*parts))
        return self.fake

    def _given_names(self) -> dict[str, set[str]]:
        """Lower-cased given names of the generator's locale by gender (``male``, ``female``)."""
        if not hasattr(self, "_genders"):
            self._genders = {"male": set(), "female": set()}
            for provider in self.fake.providers:  # the locale's person provider holds the gendered lists
                for gender, names in self._genders.items():
                    names.update(str(n).lower() for n in getattr(provider, f"first_names_{gender}", ()) or ())
        return self._genders

    def name_gender(self, given: str) -> str | None:
        """``male`` or ``female`` when ``given`` is a given name of only that gender in the locale, else None.

        Example:
            >>> SurrogateGenerator().name_gender("Jennifer"), SurrogateGenerator().name_gender("Xq")
            ('female', None)
        """
        low = given.lower()
        hits = [g for g, names in self._given_names().items() if low in names]
        return hits[0] if len(hits) == 1 else None

    def _name_token(self, token: str, patient: str, role: str = "auto", gender: str | None = None) -> str:
        """A surrogate for one name token; ``role`` ``given`` / ``surname`` when the position says which it is,
        ``gender`` (from a title or the original given name) picks a given name of the same gender."""
        if len(token) == 1:
            initial = self._rng(patient, "initial", token).choice(string.ascii_uppercase.replace(token.upper(), ""))
            return initial.lower() if token.islower() else initial
        low = token.lower()
        if role == "auto":
            tag = self._role_tag(patient, low)
            if tag in self._name_roles:
                # "Quenvaro Dastrelik" seen before: a lone "quenvaro" is that given name, not an unknown surname
                role, learned = self._name_roles[tag]
                gender = gender or learned
            else:
                # a given name of one gender in the locale ("John", "Mary") is a given name even where some family
                # bears it as a surname; "Smith", "Quenvaro" are surnames
                gendered = self.name_gender(low) if low in self._first else None
                role = "given" if low in self._first and (low not in self._last or gendered) else "surname"
                gender = gender or (gendered if role == "given" else None)
                self._remember_role(tag, role, gender)
        for attempt in range(20):  # never the original itself: "Martha" must not stay "Martha"
            again = (attempt,) if attempt else ()  # (the first draw's seed parts are those of earlier versions)
            if role == "given":
                fake = self._faker(patient, "given", low, gender or "", *again)
                new = {"male": fake.first_name_male, "female": fake.first_name_female}.get(gender or "",
                                                                                          fake.first_name)()
            else:
                new = self._faker(patient, "name", low, *again).last_name()
            if new.lower() != low:
                break
        return match_case(token, new)

    def _name(self, original: str, patient: str, gender: str | None, one_word_role: str | None = None) -> str:
        """A name span token by token: with two or more words, the last is the surname and the others given names
        ("Mr. John Smith" -> "Mr. Robert Jones", never "Mr. Jennifer ..."); one word after a title is a surname."""
        word = r"[^\W\d_]+(?:['’][^\W\d_]+)?"
        words = [m for m in re.finditer(word, original) if len(m.group()) > 1]
        comma = original.find(",")
        if len(words) >= 2 and comma > 0 and words[0].start() < comma < words[-1].start():
            # "DOE, JANE A" (a form field): surname(s) before the comma, given names after it
            gender = gender or self.name_gender(next(m.group() for m in words if m.start() > comma))
            return re.sub(word, lambda m: self._name_token(m.group(), patient, "surname" if m.start() < comma else
                                                           "given", gender), original)
        if len(words) < 2:
            role = one_word_role or ("surname" if gender and words else "auto")
            return re.sub(word, lambda m: self._name_token(m.group(), patient, role, gender), original)
        gender = gender or self.name_gender(words[0].group())
        last = words[-1].start()
        for m in words:
            self._remember_role(self._role_tag(patient, m.group().lower()),
                                "surname" if m.start() == last else "given", gender)
        return re.sub(word, lambda m: self._name_token(m.group(), patient, "surname" if m.start() == last else
                                                       "given", gender), original)

    def replace(self, entity_type: str, original: str, patient_id: str | None = None, *,
                gender: str | None = None, role: str | None = None) -> str:
        """The surrogate for one detected span; ``gender`` (``male``/``female``, e.g. from a title before a name)
        keeps a surrogate name consistent with its context; ``role`` (``given`` / ``surname``) says what a
        one-word name is (default: a surname after a gendered title, else as the name was first seen)."""
        patient = patient_id or ""
        key = (entity_type, original, patient, gender, role)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if len(self._cache) > 200_000:  # determinism makes the cache optional: bound memory on huge corpora
            self._cache.clear()
        out = self._name(original, patient, gender, role) if entity_type == "NAME" else \
            self._make(entity_type, original, patient)
        if entity_type != "DATE" or out != "[DATE]":
            self._cache[key] = out
        return out

    def _make(self, entity_type: str, original: str, patient: str) -> str:
        for attempt in range(20):  # never the original itself (a faker city or a random number that happens to be it)
            new = self._draw(entity_type, original, patient, attempt)
            if new.lower() != original.lower() or entity_type in ("NAME", "DATE", "AGE"):
                return new
        return new

    def _draw(self, entity_type: str, original: str, patient: str, attempt: int = 0) -> str:
        again = (attempt,) if attempt else ()
        if entity_type == "NAME":
            return self._name(original, patient, None)
        if entity_type == "DATE":
            shifted = shift_date_text(original, self.date_shift_days(patient or None))
            if shifted is None:
                self.unparsed_dates += 1
                return "[DATE]"
            return shifted
        if entity_type == "AGE":
            return "90+"
        fake = self._faker(patient, entity_type, original, *again)
        if entity_type == "EMAIL":
            return match_case(original, fake.email())
        if entity_type == "URL":
            return match_case(original, fake.url().rstrip("/") if "://" in original else fake.domain_name())
        if entity_type == "IP":
            return fake.ipv6() if ":" in original else fake.ipv4_private()
        if entity_type == "ADDRESS":
            return match_case(original, fake.street_address())
        if entity_type == "LOCATION":
            city = fake.city()
            if opening := FACILITY_AT_START.match(original):
                return opening.group() + match_case(original[opening.end():], city)
            if tail := FACILITY_AT_END.search(original):
                return match_case(original[:tail.start()] or original, city) + tail.group()
            return match_case(original, city)
        rng = self._rng(patient, entity_type, original, *again)
        if entity_type == "DEVICE" and original.startswith("(01)"):
            # a GS1 UDI keeps its application identifiers, "(01)", "(17)", "(10)": only the values are drawn
            return "".join(part if _GS1_AI.fullmatch(part) else shape_preserving(part, rng)
                           for part in _GS1_AI.split(original))
        return shape_preserving(original, rng)
