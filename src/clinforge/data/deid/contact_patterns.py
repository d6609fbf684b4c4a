"""Contact identifiers in text: e-mail addresses, web addresses and bare domains, IPv6 addresses and social-media
handles (HIPAA Safe Harbor F, N, O and R), for the ``patterns`` recognizer.

Each is found from a literal trigger that re can jump to ("@", a dot and a top-level domain, a colon between hex
digits), and its full extent is then worked out around the hit.

Example:
    >>> from clinforge.data.deid.spans import make_span
    >>> out = []; t = "mail jane.doe@example.org or see www.example.org; IG @jdoe_1990"
    >>> find_contacts(t, out.append, lambda *a: make_span(*a, "patterns"))
    >>> [(t[s.start:s.end], s.entity_type) for s in out]
    [('jane.doe@example.org', 'EMAIL'), ('www.example.org', 'URL'), ('@jdoe_1990', 'ID')]
"""

from __future__ import annotations

import re
from collections.abc import Callable

from clinforge.data.deid.pattern_checks import is_ipv6
from clinforge.data.deid.spans import Span

# A social-media handle ("@jdoe_1990"): "@" opening a word that is no e-mail's domain. Nurses write "@" for "at"
# ("O2 @2L", "@1400", "@bedside"), so a handle needs an underscore, letters then digits ("@jdoe1990"), or a platform
# or "handle" / "username" cue just before it.
_HANDLE = re.compile(r"@(?P<h>[A-Za-z][A-Za-z0-9_.]{1,29}[A-Za-z0-9_])(?![\w@]|\.\w)")
_HANDLE_SHAPE = re.compile(r"_|[A-Za-z]{3}.*\d")
_HANDLE_CUE = re.compile(r"(?i:handle|user ?name|twitter|instagram|insta|ig|tiktok|snapchat|snap|facebook|fb|reddit|"
                         r"discord|telegram|threads|bluesky|x)\b[^\n]{0,12}$")
_EMAIL_AT = re.compile(r"@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
_DOMAIN_TLD = re.compile(
    r"\.(?:com|org|net|edu|gov|mil|info|biz|io|co|us|uk|de|fr|it|es|nl|be|ch|at|se|no|dk|fi|pl|cz|hu|ru|jp|cn|in|br|"
    r"au|ca|nz|za|gr|pt|ie|il|tr|mx|ar|hr|si|sk|lt|lv|ee|ro|bg|ua|kr|tw|hk|sg|my|ph|vn|th|health|med|app|dev|me|tv|"
    r"cc|is|COM|ORG|NET|EDU|GOV)\b(?:/[^\s]*[^\s.,;:!?)])?")
# Top-level domains that are also English words or note abbreviations: alone after one word they are a typo.
_WORD_TLDS = frozenset({"is", "no", "me", "in", "at", "be", "it", "us", "co", "my", "tv", "cc", "am", "to", "do",
                        "so", "pt", "ca", "de", "es", "hr", "ie", "il", "ar", "th", "pl", "ph", "ro", "si", "med"})
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_LOCAL_PART = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def find_contacts(text: str, add: Callable[[Span], None], span: Callable[[int, int, str, float, str], Span]) -> None:
    """Add the e-mail addresses, domains, social-media handles and IPv6 addresses of ``text`` (see the module
    docstring); ``span`` is the recognizer's span factory."""
    for m in _EMAIL_AT.finditer(text):
        start = m.start()
        while start > 0 and text[start - 1] in _LOCAL_PART:
            start -= 1
        if start < m.start():
            add(span(start, m.end(), "EMAIL", 0.95, "e-mail address"))
    for m in _DOMAIN_TLD.finditer(text):
        start = m.start()
        while start > 0 and text[start - 1] in _HOST_CHARS:
            start -= 1
        while start < m.start() and not text[start].isalnum():
            start += 1
        if start < m.start() and (start == 0 or text[start - 1] not in "@/") and "." not in text[start:start + 1]:
            tld = text[m.start() + 1:m.end()].split("/")[0].lower()
            if tld in _WORD_TLDS and "." not in text[start:m.start()] and "/" not in text[m.start():m.end()]:
                continue  # "pt.is", "monday.no": two words with a missing space, not a web address
            if text[m.start() - 1:m.start()] == ".":
                continue  # "afternoon...pt": an ellipsis
            if not any(c.isalpha() for c in text[start:m.start()]):
                continue  # "wbc today=12.5.no antibx": a number before a word, no host name
            add(span(start, m.end(), "URL", 0.75, "domain name"))
    for m in (_HANDLE.finditer(text) if "@" in text else ()):  # (led by "@": re jumps between them)
        if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_@."):
            continue  # an e-mail's "@" or part of a longer token
        if _HANDLE_SHAPE.search(m.group("h")) or _HANDLE_CUE.search(text, max(0, m.start() - 30), m.start()):
            add(span(m.start(), m.end(), "ID", 0.8, "social-media handle"))
    for m in _IPV6_HINT.finditer(text):
        start, end = m.start(), m.end()
        while start > 0 and (text[start - 1] in "0123456789abcdefABCDEF:"):
            start -= 1
        while end < len(text) and text[end] in "0123456789abcdefABCDEF:":
            end += 1
        candidate = text[start:end]
        if candidate.count(":") >= 2 and is_ipv6(candidate):
            add(span(start, end, "IP", 0.85, "IPv6 address"))
