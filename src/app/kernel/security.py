"""Users' access tokens: minted by identity, checked at the edge for every guarded route."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.security.jwt import JWTAuth, Token

from app.kernel.config import ConfigError, Settings
from contracts import Principal

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

__all__ = ("AccessTokens", "IssuedAccessToken", "public", "resolve_signing_key")

ALGORITHM = "HS256"
MIN_KEY_LENGTH = 32
GENERATED_KEY_FILE = "secrets/signing.key"

# Routes under these paths need no user: documentation and probes must work anonymously.
PUBLIC_PATHS = ("^/schema", "^/health/")


def public(reason: str) -> dict[str, Any]:
    """Route ``opt`` that opens a route to anonymous callers; the reason is required."""
    if not reason.strip():
        raise ValueError("a public route must say why it needs no authentication")
    return {"exclude_from_auth": True, "public_because": reason}


class IssuedAccessToken(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    expires_in: int


class AccessTokens:
    """Short-lived signed JWTs that say which user is acting."""

    __slots__ = ("_audience", "_issuer", "_key", "_ttl")

    def __init__(self, *, signing_key: str, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key = signing_key
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessTokens:
        security = settings.security
        return cls(
            signing_key=resolve_signing_key(settings),
            issuer=security.issuer,
            audience=security.audience,
            ttl_seconds=security.access_token_ttl_seconds,
        )

    def issue(self, principal: Principal) -> IssuedAccessToken:
        token = Token(
            sub=str(principal.user_id),
            exp=datetime.now(UTC) + timedelta(seconds=self._ttl),
            iss=self._issuer,
            aud=self._audience,
            jti=uuid.uuid4().hex,
        )
        return IssuedAccessToken(token=token.encode(self._key, ALGORITHM), expires_in=self._ttl)

    def auth(self) -> JWTAuth[Principal, Token]:
        """The Litestar auth config that guards every route not marked :func:`public`."""
        return JWTAuth[Principal, Token](
            token_secret=self._key,
            algorithm=ALGORITHM,
            retrieve_user_handler=_principal_of,
            accepted_issuers=[self._issuer],
            accepted_audiences=[self._audience],
            require_claims=["exp", "iat", "sub", "iss", "aud"],
            exclude=list(PUBLIC_PATHS),
            description="A user's access token from POST /api/v1/auth/token.",
        )


async def _principal_of(token: Token, _connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    try:
        return Principal(user_id=uuid.UUID(token.sub))
    except ValueError:
        return None


def resolve_signing_key(settings: Settings) -> str:
    """The configured key, or in development a generated one kept in the data dir."""
    key = settings.security.signing_key.reveal()
    if not key and settings.security.generate_signing_key:
        key = _generated_key(Path(settings.data_dir) / GENERATED_KEY_FILE)
    if not key:
        raise ConfigError(
            "security.signing_key: not set; give it with TESSERA_SECURITY__SIGNING_KEY_FILE "
            "(a secret file) or TESSERA_SECURITY__SIGNING_KEY"
        )
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"security.signing_key: must be at least {MIN_KEY_LENGTH} characters")
    return key


def _generated_key(path: Path) -> str:
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: when several workers start at once, the first one's key wins.
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(key)
        path.chmod(0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    return key
