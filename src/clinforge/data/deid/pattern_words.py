"""Words and small regexes that the de-identification patterns are built from: month names, day / year numbers,
street suffixes (USPS via faker, and the prefix / glued forms of other countries), US state names.

Kept apart from ``patterns.py`` (the rules themselves) so that the rules read as rules.

Example:
    >>> import re
    >>> bool(re.fullmatch(MONTH, "Sept.")), bool(re.fullmatch(MONTH, "JANUARY")), bool(re.fullmatch(MONTH, "may"))
    (True, True, False)
"""

from __future__ import annotations

from clinforge.data.deid.lexicons import US_STATE_CODES, trie_regex

MONTHS_FULL = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"]
MONTH_FULL_FORMS = ({m for m in MONTHS_FULL} | {m.upper() for m in MONTHS_FULL}
                     | {m.lower() for m in MONTHS_FULL if m not in ("May", "March")})
MONTH_ABBR_FORMS = {m[:3] for m in MONTHS_FULL} | {m[:3].upper() for m in MONTHS_FULL} | {"Sept", "SEPT"}


def month_regex(full_forms: list[str], abbreviations: list[str]) -> str:
    """Month names, full forms before abbreviations, a dot only after an abbreviation ("Jan."), so "2nd of
    January." leaves the full stop alone.

    Written as one branch per first letter (``J(?:anuary|...|(?:an|...)\\.?)``) rather than ``(?:FULL|(?:ABBR)\\.?)``:
    every branch then starts with a literal, so ``re`` skips in C to the positions holding one of those letters
    instead of trying the whole pattern at every character. At any position only one first letter's branches can
    match, and there the full forms are still tried before the abbreviations, so the matches are the same.
    """
    branches = []
    for first in sorted({w[0] for w in full_forms} | {w[0] for w in abbreviations}):
        full = [w[1:] for w in full_forms if w[0] == first]
        abbr = [w[1:] for w in abbreviations if w[0] == first]
        parts = ([trie_regex(full)] if full else []) + (["(?:" + trie_regex(abbr) + r")\.?"] if abbr else [])
        branches.append(first + "(?:" + "|".join(parts) + ")")
    return "(?:" + "|".join(branches) + ")"


MONTH = month_regex(sorted(MONTH_FULL_FORMS), sorted(MONTH_ABBR_FORMS))
DAY = r"(?:0?[1-9]|[12]\d|3[01])"
ORD = r"(?:st|nd|rd|th|ST|ND|RD|TH)?"  # "JAN 5TH" in an all-capitals note
# 1800-2199: the 2100s are where date-shifted corpora (MIMIC, i2b2) put their notes
YEAR = r"(?:1[89]\d\d|2[01]\d\d)"
SEP_NUM = r"(?<![\d./:-])"  # not part of a longer number / version / time
END_NUM = r"(?![\d]|[./:-]\d)"

def usps_suffixes() -> list[str]:
    """Street suffixes from faker's en_US address provider (the USPS list), plus their common abbreviations."""
    from faker.providers.address.en_US import Provider

    return list(Provider.street_suffixes)


STREET_SUFFIX = trie_regex(sorted(set(['Street', 'St', 'Avenue', 'Ave', 'Av', 'Road', 'Rd', 'Boulevard', 'Blvd', 'Lane', 'Ln', 'Drive', 'Dr', 'Court', 'Ct', 'Way', 'Place', 'Pl', 'Terrace', 'Ter', 'Circle', 'Cir', 'Parkway', 'Pkwy', 'Highway', 'Hwy', 'Square', 'Sq', 'Trail', 'Trl', 'Loop', 'Row', 'Alley', 'Aly', 'Plaza', 'Plz', 'Crescent', 'Cres', 'Close', 'Grove', 'Gardens', 'Gdns', 'Hill', 'Hills', 'Heights', 'Hts', 'Park', 'Pike', 'Path', 'Run', 'Walk', 'Expressway', 'Expy', 'Freeway', 'Fwy', 'Turnpike', 'Tpke', 'Crossing', 'Xing', 'Bypass', 'Byp', 'Point', 'Pt', 'Ridge', 'Rdg', 'View', 'Vw', 'Harbor', 'Hbr', 'Junction', 'Jct', 'Mall', 'Manor', 'Mews', 'Meadows', 'Mill', 'Mills', 'Pass', 'Port', 'Ranch', 'Route', 'Rte', 'Shore', 'Shores', 'Springs', 'Station', 'Sta', 'Summit', 'Smt', 'Track', 'Trace', 'Union', 'Valley', 'Vly', 'Village', 'Vlg', 'Wells', 'Club', 'Common', 'Commons', 'Estates', 'Falls', 'Fields', 'Forest', 'Forge', 'Fork', 'Glen', 'Green', 'Haven', 'Hollow', 'Isle', 'Key', 'Knolls', 'Lake', 'Lakes', 'Landing', 'Light', 'Lodge', 'Motorway', 'Oval', 'Overpass', 'Prairie', 'Radial', 'Rest', 'Spur', 'Stream', 'Underpass', 'Ville', 'Vista', 'Wall', 'Well']) | set(usps_suffixes())))
GLUED_SUFFIX = trie_regex(['straße', 'strasse', 'str.', 'weg', 'gasse', 'platz', 'allee', 'damm', 'ring', 'ufer', 'laan', 'straat', 'plein', 'gracht', 'kade', 'singel', 'dreef', 'vägen', 'väg', 'gatan', 'gata', 'gränd', 'stigen', 'gade', 'vej', 'veien', 'vegen', 'gate', 'katu', 'tie', 'kuja', 'polku', 'tori', 'kaari', 'rinne', 'väylä', 'utca', 'út', 'tér', 'sor', 'ulice', 'cesta', 'ulica', 'iela', 'gatvė', 'tänav'])
PREFIX_STREET = trie_regex(['Rue', 'Avenue', 'Av.', 'Avda', 'Avda.', 'Avenida', 'Calle', 'C/', 'Camino', 'Paseo', 'Plaza', 'Via', 'Viale', 'Vicolo', 'Piazza', 'Corso', 'Largo', 'Rua', 'Travessa', 'Praça', 'Estrada', 'Alameda', 'ul.', 'ulica', 'al.', 'Aleja', 'Plac', 'os.', 'Osiedle', 'Strada', 'Calea', 'Bulevardul', 'Boulevard', 'Bd', 'Bd.', 'Chemin', 'Place', 'Impasse', 'Allée', 'Quai', 'Route', 'Cours', 'Passage', 'Sentier', 'Carrer', 'Ronda', 'Avinguda', 'Odos', 'Leoforos', 'Ulitsa', 'Prospekt', 'Pereulok'])
CAP = r"[A-ZÀ-ÖØ-ÞĀ-Ž][\w'’.-]*"
UNIT = r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Bldg|Building|Floor|Fl|Room|Rm|#)\.?\s*#?\s*[\w-]+)?"
STATE_NAMES = [*US_STATE_CODES, 'Alabama', 'Alaska', 'Arizona', 'Arkansas', 'California', 'Colorado', 'Connecticut', 'Delaware', 'Florida', 'Georgia', 'Hawaii', 'Idaho', 'Illinois', 'Indiana', 'Iowa', 'Kansas', 'Kentucky', 'Louisiana', 'Maine', 'Maryland', 'Massachusetts', 'Michigan', 'Minnesota', 'Mississippi', 'Missouri', 'Montana', 'Nebraska', 'Nevada', 'New Hampshire', 'New Jersey', 'New Mexico', 'New York', 'North Carolina', 'North Dakota', 'Ohio', 'Oklahoma', 'Oregon', 'Pennsylvania', 'Rhode Island', 'South Carolina', 'South Dakota', 'Tennessee', 'Texas', 'Utah', 'Vermont', 'Virginia', 'Washington', 'West Virginia', 'Wisconsin', 'Wyoming']
STATES = trie_regex(STATE_NAMES)
