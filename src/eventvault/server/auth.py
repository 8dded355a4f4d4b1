"""Bearer tokens with scopes (``append``, ``read``, ``admin``).

Only SHA-256 digests of the tokens are kept in memory; a presented token is hashed
and compared with every known digest in constant time (:func:`hmac.compare_digest`,
over all of them, so the time does not tell which one nearly matched). Tokens are
never logged: the access log names the token's ``name``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from ..config import ServerConfig, TokenConfig
from ..errors import ConfigError

__all__ = ["SCOPES", "Principal", "TokenBook", "is_loopback"]

SCOPES = ("append", "read", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


#: Who a request is when no token is configured (the server then binds loopback only).
LOCAL = Principal("local", frozenset(SCOPES))


def _digest(token: TokenConfig) -> bytes:
    if token.token_sha256 is not None:
        try:
            raw = bytes.fromhex(token.token_sha256)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"server token {token.name!r}: token_sha256 is not 64 hex digits")
        return raw
    assert token.token is not None
    if len(token.token) < 16:
        raise ConfigError(
            f"server token {token.name!r}: too short (use 16+ random characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return hashlib.sha256(token.token.encode()).digest()


class TokenBook:
    """The configured tokens, hashed."""

    def __init__(self, tokens: list[TokenConfig]) -> None:
        self._entries = [(_digest(t), Principal(t.name, frozenset(t.scopes))) for t in tokens]

    @classmethod
    def from_config(cls, server: ServerConfig) -> TokenBook:
        return cls(server.tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def who(self, authorization: str | None) -> Principal | None:
        """The principal an ``Authorization`` header names, or None."""
        if not self._entries:
            return LOCAL
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for digest, principal in self._entries:  # no early exit: constant over the book
            if hmac.compare_digest(digest, presented):
                found = principal
        return found


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
