"""Secrets: a value that never shows itself, and the masking of secrets in text.

A journal URL with a password, a token: read from the environment or a file
(see garrison._settings), held as a :class:`Secret`, and shown as ``***``
wherever it could be printed: ``repr``, ``str``, ``garrison config show``,
error messages and (through :func:`mask_text`) every line the ``garrison``
command logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from garrison._errors import InvalidConfig

__all__ = ["MASK", "Secret", "is_secret_name", "mask_text", "redact_url", "secret_texts"]

MASK = "***"
"""What a secret is shown as."""

_SECRET_NAMES = ("password", "passwd", "token", "secret")
"""A setting or URL query parameter whose name is one of these, or ends in ``_`` and one of
these (``api_token``, ``db_password``), is a secret."""


def is_secret_name(name: str) -> bool:
    """True for names that hold secrets: ``password``, ``token``, ``secret`` (``passwd``), alone
    or as a suffix after ``_`` or ``-`` (``redis_password``, ``api-token``); any case."""
    lowered = name.lower()
    return any(lowered == word or lowered.endswith(("_" + word, "-" + word)) for word in _SECRET_NAMES)


def redact_url(url: str) -> str:
    """``url`` with its password, and the values of query parameters named like secrets
    (``?password=...``, ``?token=...``), replaced by ``***``; other text unchanged."""
    try:
        parts = urlsplit(url)
        password = parts.password
        port = parts.port
    except ValueError:  # not a URL one can take apart: show none of it
        return MASK
    if password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        parts = parts._replace(netloc=f"{user}:{MASK}@{host}{f':{port}' if port is not None else ''}")
    if parts.query:
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(is_secret_name(name) for name, _ in query):
            masked = [(name, MASK if is_secret_name(name) else value) for name, value in query]
            parts = parts._replace(query=urlencode(masked, safe="*"))
    return urlunsplit(parts)


class Secret:
    """A secret value (a password, a token, a URL with a password in it) that never shows itself.

    ``repr``, ``str`` and ``format`` give the masked text: a URL (anything with
    ``://``) with only its password and secret query parameters masked
    (``redis://:***@db:6379/0``), anything else ``***``. :meth:`reveal` is the
    one way to the value itself. Two secrets are equal when their values are.

    >>> url = Secret("redis://:hunter2@db:6379/0")
    >>> print(url, [url])
    redis://:***@db:6379/0 [Secret('redis://:***@db:6379/0')]
    >>> url.reveal()
    'redis://:hunter2@db:6379/0'

    Raises:
        InvalidConfig: ``value`` is not a string.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise InvalidConfig("Secret", type(value).__name__, "a secret is a string")
        self._value = value

    def reveal(self) -> str:
        """The secret value itself: pass it to what needs it, never to a log or a message."""
        return self._value

    def masked(self) -> str:
        """The text shown for this secret (see the class)."""
        return redact_url(self._value) if "://" in self._value else MASK

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def secret_texts(value: str) -> list[str]:
    """The texts of ``value`` that must never be shown: the password of a URL (as written and
    decoded), its secret query values, or the whole value when it is not a URL."""
    if "://" not in value:
        return [value] if value else []
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return [value]
    texts: list[str] = []
    if password:
        texts += [password, unquote(password), quote(unquote(password), safe="")]
    for name, query_value in parse_qsl(parts.query, keep_blank_values=True):
        if is_secret_name(name) and query_value:
            texts += [query_value, quote(query_value, safe="")]
    return list(dict.fromkeys(text for text in texts if text))


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` (longest first) replaced by ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text
