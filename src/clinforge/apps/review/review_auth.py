"""Accounts, sessions, CSRF tokens, one-time invites and the login rate limit of the review app.

* Passwords: Argon2id (argon2-cffi's ``PasswordHasher`` defaults, RFC 9106 low-memory profile); at least 10
  characters. A login for an unknown user still verifies against a dummy hash, so timing does not reveal accounts.
* Sessions: a random 256-bit cookie token; only its SHA-256 is stored, so a leaked database holds no live session.
  Each session has its own CSRF token, which every state-changing request must echo (form field or header).
* Invites: a random 256-bit token shown once to the admin as a link; only its SHA-256 is stored; it expires after
  ``INVITE_DAYS`` days and works once.
* Login rate limit: at most ``MAX_FAILURES`` failed logins per username, and ``MAX_CLIENT_FAILURES`` per client
  address (higher: a ward's machines may share one address), within ``FAILURE_WINDOW``; further attempts are
  refused (HTTP 429), before the password is even checked, until old failures leave the window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from clinforge.apps.review.review_db import AuditEvent, Invite, LoginFailure, User, WebSession, utcnow
from clinforge.core.errors import ConfigError

ROLES = ("admin", "rater")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_PASSWORD = 10
SESSION_HOURS = 12
INVITE_DAYS = 7
MAX_FAILURES = 5
MAX_CLIENT_FAILURES = 20
FAILURE_WINDOW = dt.timedelta(minutes=15)

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


def token_hash(token: str) -> str:
    """SHA-256 hex of a session or invite token (what the database stores).

    Example:
        >>> len(token_hash("abc"))
        64
    """
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(username: str) -> str:
    """The username if it is 1-64 letters, digits, ``_ . -`` starting with a letter or digit (so it can never
    start a spreadsheet formula in an export), else ConfigError.

    Example:
        >>> check_username("dr.smith")
        'dr.smith'
    """
    if not USERNAME.match(username or ""):
        raise ConfigError(f"username {username!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a "
                          "letter or digit")
    return username


def check_password(password: str) -> str:
    """The password if it has at least ``MIN_PASSWORD`` characters, else ConfigError.

    Example:
        >>> check_password("correct horse")
        'correct horse'
    """
    if len(password or "") < MIN_PASSWORD:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")
    return password


def audit(session: Session, user_id: int | None, action: str, **detail: object) -> None:
    """Append an audit event (ids and counts only, never item text)."""
    session.add(AuditEvent(user_id=user_id, action=action, detail=detail))


def create_user(session: Session, username: str, password: str, role: str, *, by: int | None = None) -> User:
    """A new account with an Argon2id password hash; ConfigError if the name is taken or invalid.

    Example:
        >>> create_user(session, "admin1", "a long password", "admin")  # doctest: +SKIP
    """
    check_username(username)
    check_password(password)
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise ConfigError(f"user {username!r} exists already")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    audit(session, by, "user.create", user=user.id, role=role)
    return user


def recent_failures(session: Session, username: str, client: str) -> tuple[int, int]:
    """Failed logins in the window (for this username, from this client)."""
    since = utcnow() - FAILURE_WINDOW
    by_user = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.username == username, LoginFailure.at >= since)) or 0
    by_client = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.client == client, LoginFailure.at >= since)) or 0
    return by_user, by_client


class RateLimited(Exception):
    """Too many failed logins for this username or client."""


def authenticate(session: Session, username: str, password: str, client: str) -> User | None:
    """The active user whose password matches, else None (the failure is recorded); RateLimited when the
    username or the client has too many recent failures (checked before the password, so guessing stops)."""
    username = (username or "")[:64]
    by_user, by_client = recent_failures(session, username, client)
    if by_user >= MAX_FAILURES or by_client >= MAX_CLIENT_FAILURES:
        raise RateLimited()
    user = session.scalar(select(User).where(User.username == username))
    try:
        ok = _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "") and user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or not user.active:
        session.add(LoginFailure(username=username, client=client[:64]))
        # only the window counts; older failures would only grow the table
        session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - 4 * FAILURE_WINDOW))
        audit(session, user.id if user else None, "login.failed")
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    audit(session, user.id, "login")
    return user


def start_session(session: Session, user: User) -> str:
    """Create a login session for ``user``; returns the cookie token (stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=token_hash(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                           expires_at=utcnow() + dt.timedelta(hours=SESSION_HOURS)))
    session.execute(delete(WebSession).where(WebSession.expires_at < utcnow()))
    return token


def session_user(session: Session, token: str | None) -> tuple[User, WebSession] | None:
    """(user, web session) for a cookie token that is live and whose user is active, else None."""
    if not token:
        return None
    web = session.scalar(select(WebSession).where(WebSession.token_hash == token_hash(token)))
    if web is None or _aware(web.expires_at) < utcnow():
        return None
    user = session.get(User, web.user_id)
    return (user, web) if user is not None and user.active else None


def end_session(session: Session, token: str | None) -> None:
    """Delete the session of this cookie token (logout)."""
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the session's CSRF token with the one the request echoed.

    Example:
        >>> csrf_ok("abc", "abc"), csrf_ok("abc", None)
        (True, False)
    """
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def create_invite(session: Session, admin: User, *, note: str = "", role: str = "rater") -> str:
    """A one-time invite token (the admin shares the link; only the hash is stored)."""
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}")
    token = secrets.token_urlsafe(32)
    invite = Invite(token_hash=token_hash(token), role=role, note=note[:200], created_by=admin.id,
                    expires_at=utcnow() + dt.timedelta(days=INVITE_DAYS))
    session.add(invite)
    session.flush()
    audit(session, admin.id, "invite.create", invite=invite.id, role=role)
    return token


def open_invite(session: Session, token: str) -> Invite | None:
    """The unused, unexpired invite of this token, else None."""
    invite = session.scalar(select(Invite).where(Invite.token_hash == token_hash(token or "")))
    if invite is None or invite.used_at is not None or _aware(invite.expires_at) < utcnow():
        return None
    return invite


def accept_invite(session: Session, token: str, username: str, password: str) -> User:
    """Create the invited account and use the invite up; ConfigError if the invite is gone or the name taken.
    The invite row is locked (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite) so it works only once."""
    invite = session.scalar(select(Invite).where(Invite.token_hash == token_hash(token or "")).with_for_update())
    if invite is None or invite.used_at is not None or _aware(invite.expires_at) < utcnow():
        raise ConfigError("this invitation link is not valid any more (used or expired); ask for a new one")
    user = create_user(session, username, password, invite.role, by=invite.created_by)
    invite.used_at, invite.used_by = utcnow(), user.id
    audit(session, user.id, "invite.accept", invite=invite.id)
    return user


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes for DateTime(timezone=True); every value was written as UTC
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
