"""Who is calling: users' access tokens (minted by identity, checked at the edge for every
guarded route), the service tokens groups of a split present to each other, and passwords."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import jwt
import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import JWTAuth, JWTCookieAuth, Token

from app.kernel.clock import utcnow
from app.kernel.config import ConfigError, PasswordHashSettings, Settings
from app.kernel.refresher import Refresher
from app.kernel.signing_keys import ALGORITHM as KEY_ALGORITHM
from app.kernel.signing_keys import PublishedKeys, SigningKeys, service_tokens_of
from contracts import DependencyUnavailable, Principal

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

    from contracts.identity import SessionRevocation

__all__ = (
    "Passwords",
    "AccessTokens",
    "IssuedAccessToken",
    "RevokedSessions",
    "ServiceClaims",
    "ServiceTokens",
    "VerifiedTokens",
    "after_revocation",
    "public",
    "KEYS_NOT_LEARNT",
    "derived_secret",
    "resolve_signing_key",
    "service_keys",
)

log = logging.getLogger("tessera.security")

SESSION_EPOCH_CLAIM = "sep"  # the user's session epoch when the token was issued
MIN_KEY_LENGTH = 32
GENERATED_KEY_FILE = "secrets/signing.key"
GENERATED_SERVICE_KEY_FILE = "secrets/service-{group}.key"  # one per group
HASHING_NICENESS = 10  # added to a hashing thread's nice value: the scheduler favours the event loop
R = TypeVar("R")
T = TypeVar("T")

# Every open route says why with public() on the route itself; no path is open by pattern.


_OPEN_TO_REVOKED = "open_to_revoked_sessions"
# How a callee refuses a service token signed by a key it has not (yet) fetched; the caller
# takes it for a passing condition while it starts (app.kernel.rpc).
KEYS_NOT_LEARNT = "not signed by a key of group"


def after_revocation(reason: str) -> dict[str, Any]:
    """Route ``opt`` that still takes a user's validly signed token after their sessions were
    revoked (the route must itself limit what such a caller sees); the reason is required."""
    if not reason.strip():
        raise ValueError("a route open to revoked sessions must say why")
    return {_OPEN_TO_REVOKED: True, "open_to_revoked_because": reason}


def public(reason: str) -> dict[str, Any]:
    """Route ``opt`` that opens a route to anonymous callers; the reason is required."""
    if not reason.strip():
        raise ValueError("a public route must say why it needs no authentication")
    return {"exclude_from_auth": True, "public_because": reason}


class IssuedAccessToken(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    expires_in: int


class AccessTokens:
    """Short-lived signed JWTs that say which user is acting.

    Signed (EdDSA) only where identity runs, with its key pairs (``SigningKeys``); checked
    everywhere against the public keys: the same pairs there, the published ones elsewhere.
    """

    __slots__ = ("_audience", "_issuer", "_signing", "_ttl", "_verifying")

    def __init__(
        self,
        *,
        signing: Callable[[], SigningKeys] | None,
        verifying: Callable[[], KeySource],
        issuer: str,
        audience: str,
        ttl_seconds: int,
    ) -> None:
        self._signing = _Lazy(signing) if signing is not None else None
        self._verifying = _Lazy(verifying)
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds

    @classmethod
    def signed_here(cls, settings: Settings) -> AccessTokens:
        """Where identity runs: its key pairs, read (or in development made) when first used."""
        security = settings.security
        keys = _Lazy(lambda: SigningKeys(resolve_signing_key(settings), _previous_keys(settings)))
        return cls(
            signing=keys.get,
            verifying=keys.get,
            issuer=security.issuer,
            audience=security.audience,
            ttl_seconds=security.access_token_ttl_seconds,
        )

    @classmethod
    def verified_here(cls, settings: Settings, published: PublishedKeys) -> AccessTokens:
        """Anywhere else: the public keys identity publishes; this process can mint nothing."""
        security = settings.security
        return cls(
            signing=None,
            verifying=lambda: published,
            issuer=security.issuer,
            audience=security.audience,
            ttl_seconds=security.access_token_ttl_seconds,
        )

    def issue(self, principal: Principal, *, session_epoch: int = 0) -> IssuedAccessToken:
        """A token for ``principal`` in their current session epoch (see RevokedSessions)."""
        if self._signing is None:
            raise RuntimeError("only the process where identity runs signs users' tokens")
        now = utcnow()
        claims = {
            "sub": str(principal.user_id),
            "iat": now,
            "exp": now + timedelta(seconds=self._ttl),
            "iss": self._issuer,
            "aud": self._audience,
            "jti": uuid.uuid4().hex,
            SESSION_EPOCH_CLAIM: session_epoch,
        }
        return IssuedAccessToken(token=self._signing.get().sign(claims), expires_in=self._ttl)

    def jwks(self) -> dict[str, Any]:
        """The published public keys (where identity runs)."""
        if self._signing is None:
            raise RuntimeError("the keys are published where identity runs")
        return self._signing.get().jwks()

    def auth(self, revoked: RevokedSessions | None = None) -> JWTAuth[Principal, Token]:
        """The Litestar auth config that guards every route not marked :func:`public`.

        A token is checked with the public key its ``kid`` names, EdDSA only, once: then it
        is remembered until it expires (:class:`VerifiedTokens`). With ``revoked``, a token
        of a session epoch its user has left is refused too, on every request.
        """
        return JWTAuth[Principal, Token](**self._checks(revoked))

    def cookie_auth(
        self, revoked: RevokedSessions | None, *, cookie: str, exclude_opt_key: str
    ) -> JWTCookieAuth[Principal, Token]:
        """The same checks for a token a browser holds in the HttpOnly cookie ``cookie`` (the web
        UI's session); routes whose opt holds ``exclude_opt_key`` are not guarded by it."""
        return JWTCookieAuth[Principal, Token](
            **self._checks(revoked), key=cookie, exclude_opt_key=exclude_opt_key
        )

    def _checks(self, revoked: RevokedSessions | None) -> dict[str, Any]:
        verified = VerifiedTokens()
        if revoked is not None:
            revoked.on_revoked(verified.forget_user)
        return {
            "token_secret": "unused: each token is checked with the public key its kid names",
            "algorithm": KEY_ALGORITHM,
            "token_cls": _keyed_token(self._verifying.get, verified),
            "retrieve_user_handler": _principal_of,
            "revoked_token_handler": revoked.voids_token if revoked is not None else None,
            "accepted_issuers": [self._issuer],
            "accepted_audiences": [self._audience],
            "require_claims": ["exp", "iat", "sub", "iss", "aud"],
            "description": "A user's access token from POST /api/v1/auth/token.",
        }


class KeySource(Protocol):
    def public_key(self, kid: str) -> Any | None: ...


class VerifiedTokens:
    """Access tokens whose signature, issuer and audience were checked, until they expire.

    Checking an EdDSA signature costs about 0.2 ms, more than the rest of a cached request;
    a client presents one token for its whole life (15 minutes), so it is checked once.
    Keyed by the whole token: a token that differs in one byte is checked afresh. At most
    ``size`` are kept, the oldest dropped first. Expiry is checked on every use; a user's
    entries go at once when identity voids their sessions (and the epoch check runs on
    every request regardless).
    """

    __slots__ = ("_clock", "_entries", "_size")

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._entries: dict[str, tuple[dict[str, Any], float]] = {}
        self._size = size
        self._clock = clock

    def get(self, token: str) -> dict[str, Any] | None:
        """The claims of ``token`` if it was verified and has not expired; a copy, to be changed at will."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        claims, expires = entry
        if expires <= self._clock():
            del self._entries[token]
            return None
        return dict(claims)

    def put(self, token: str, claims: dict[str, Any]) -> None:
        expires = claims.get("exp")
        if not isinstance(expires, int | float):
            return
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (dict(claims), float(expires))

    def forget_user(self, user_id: uuid.UUID) -> None:
        subject = str(user_id)
        for token in [t for t, (claims, _) in self._entries.items() if claims.get("sub") == subject]:
            del self._entries[token]


def _keyed_token(keys: Callable[[], KeySource], verified: VerifiedTokens) -> type[Token]:
    """Litestar's Token, checked with the public key the token's header names (once: see
    :class:`VerifiedTokens`)."""

    class KeyedToken(Token):
        @classmethod
        def decode_payload(
            cls,
            encoded_token: str,
            secret: str,
            algorithms: list[str],
            issuer: str | Sequence[str] | None = None,
            audience: str | Sequence[str] | None = None,
            options: Any = None,
        ) -> Any:
            if (claims := verified.get(encoded_token)) is not None:
                return claims
            kid = jwt.get_unverified_header(encoded_token).get("kid")
            key = keys().public_key(kid) if isinstance(kid, str) else None
            if key is None:
                raise jwt.InvalidSignatureError("no published key has that kid")
            claims = jwt.decode(
                encoded_token,
                key,
                algorithms=[KEY_ALGORITHM],
                issuer=issuer,
                audience=audience,
                options=options,
            )
            verified.put(encoded_token, claims)
            return claims

    return KeyedToken


def _previous_keys(settings: Settings) -> list[str]:
    return [secret.reveal() for secret in settings.security.previous_signing_keys]


class _Lazy(Generic[T]):
    """Made when first asked for: a command that signs nothing (``tessera users make-admin``,
    say) needs no key, and leaves no generated one behind."""

    __slots__ = ("_made", "_make")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None

    def get(self) -> T:
        if self._made is None:
            self._made = self._make()
        return self._made


async def _principal_of(token: Token, _connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    try:
        return Principal(user_id=uuid.UUID(token.sub))
    except ValueError:
        return None


class RevokedSessions:
    """The users whose earlier access tokens identity has voided lately, and from which epoch.

    Every process that checks access tokens (each worker, each group of a split) keeps its
    own copy, refreshed by asking identity's contract every ``interval`` seconds, so that a
    deactivated user's token is refused everywhere within about that long, while checking a
    token stays a dictionary lookup: no database read per request. Entries older than an
    access token lives are forgotten: the tokens they void have expired by then. If identity
    cannot be reached, what was known stays in force and the poll keeps trying.
    """

    __slots__ = ("_clock", "_epochs", "_horizon", "_listeners", "_refresher", "_since", "_source")

    # Each poll reaches this far behind the previous one: a revocation stamped just before a
    # poll but committed just after it is still seen.
    OVERLAP = timedelta(seconds=5)

    def __init__(
        self,
        source: Callable[[datetime], Awaitable[list[SessionRevocation]]],
        *,
        interval_seconds: float,
        token_ttl_seconds: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._source = source
        self._horizon = timedelta(seconds=token_ttl_seconds) + self.OVERLAP
        self._clock = clock
        self._epochs: dict[uuid.UUID, tuple[int, datetime]] = {}
        self._listeners: list[Callable[[uuid.UUID], None]] = []
        self._since = clock() - self._horizon
        self._refresher = Refresher("revoked sessions", self.refresh, interval=lambda _: interval_seconds)

    def on_revoked(self, listener: Callable[[uuid.UUID], None]) -> None:
        """Call ``listener`` with each user whose sessions are newly voided."""
        self._listeners.append(listener)

    def voids(self, user_id: uuid.UUID, epoch: int) -> bool:
        known = self._epochs.get(user_id)
        return known is not None and epoch < known[0]

    async def voids_token(self, token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        if connection.scope.get("route_handler") is not None and connection.route_handler.opt.get(
            _OPEN_TO_REVOKED
        ):
            return False  # the route itself decides (see after_revocation)
        try:
            user_id, epoch = uuid.UUID(token.sub), int(token.extras.get(SESSION_EPOCH_CLAIM, 0))
        except (TypeError, ValueError):
            return True
        return self.voids(user_id, epoch)

    async def refresh(self) -> None:
        """Ask identity what was revoked since the last poll (less the overlap), and forget the old."""
        started = self._clock()
        for revocation in await self._source(self._since):
            known = self._epochs.get(revocation.user_id)
            if known is None or revocation.epoch >= known[0]:
                self._epochs[revocation.user_id] = (revocation.epoch, revocation.revoked_at)
                if known is None or revocation.epoch > known[0]:
                    for listener in self._listeners:
                        listener(revocation.user_id)
        self._since = started - self.OVERLAP
        horizon = started - self._horizon
        for user_id in [u for u, (_, at) in self._epochs.items() if at < horizon]:
            del self._epochs[user_id]

    async def start(self) -> None:
        await self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()


def resolve_signing_key(settings: Settings) -> str:
    """The users' token key: configured, or in development generated once into the data dir."""
    return _resolve_key(settings, "signing_key", settings.security.signing_key.reveal(), GENERATED_KEY_FILE)


def derived_secret(settings: Settings, group: str | None, purpose: str) -> str:
    """A secret for ``purpose``, derived from a key this process already holds (the users' key
    where it is configured or generated, else ``group``'s service key): the same in every worker
    of a group, never written anywhere."""
    if settings.security.signing_key.reveal() or group is None:
        key = resolve_signing_key(settings)
    else:
        key = _resolve_key(
            settings,
            "service_signing_key",
            settings.security.service_signing_key.reveal(),
            GENERATED_SERVICE_KEY_FILE.format(group=group),
        )
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def service_keys(settings: Settings, group: str) -> SigningKeys:
    """``group``'s own service key pairs, from its ``service_signing_key`` (never the users' key)."""
    key = settings.security.service_signing_key.reveal()
    current = _resolve_key(
        settings, "service_signing_key", key, GENERATED_SERVICE_KEY_FILE.format(group=group)
    )
    previous = [secret.reveal() for secret in settings.security.previous_service_signing_keys]
    return SigningKeys(current, previous, derivation=service_tokens_of(group))


def _resolve_key(settings: Settings, name: str, key: str, generated_file: str) -> str:
    if not key and settings.security.generate_signing_key:
        key = _generated_key(Path(settings.data_dir) / generated_file)
    if not key:
        variable = f"TESSERA_SECURITY__{name.upper()}"
        raise ConfigError(
            f"security.{name}: not set; give it with {variable}_FILE (a secret file) or {variable}"
        )
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"security.{name}: must be at least {MIN_KEY_LENGTH} characters")
    return key


def _generated_key(path: Path) -> str:
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Written aside, then linked into place: when several processes start at once, the
    # first link wins and nobody ever reads a half-written key.
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    draft.write_text(key, encoding="utf-8")
    draft.chmod(0o600)
    try:
        os.link(draft, path)
    except FileExistsError:
        key = path.read_text(encoding="utf-8").strip()
    finally:
        draft.unlink()
    return key


class ServiceClaims(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified service token says: which group calls, and for which user."""

    issuer: str
    principal: Principal | None


class ServiceTokens:
    """Short-lived tokens one group presents to another's /internal routes.

    ``iss`` is the calling group, ``aud`` the called one; ``usr`` carries the end user the
    edge authenticated, so that the callee never has to trust a bare header for it. Each group
    signs with a key pair of its own (EdDSA, derived from its ``service_signing_key``); a callee
    checks a token with the published keys of the group its ``iss`` names, and of no other: a
    token one group signs in another's name is refused. ``callers`` are the groups trusted to
    call, each with the keys it publishes.
    """

    __slots__ = ("_callers", "_group", "_keys", "_ttl")

    def __init__(
        self,
        *,
        keys: Callable[[], SigningKeys],
        group: str,
        ttl_seconds: int,
        callers: Mapping[str, PublishedKeys],
    ) -> None:
        self._keys = _Lazy(keys)
        self._group = group
        self._ttl = ttl_seconds
        self._callers = dict(callers)

    @property
    def group(self) -> str:
        return self._group

    def jwks(self) -> dict[str, Any]:
        """This group's public service keys, which its callees fetch."""
        return self._keys.get().jwks()

    def issue(self, *, audience: str, principal: Principal | None) -> str:
        now = utcnow()
        claims: dict[str, Any] = {
            "iss": self._group,
            "sub": f"group:{self._group}",
            "aud": audience,
            "iat": now,
            "exp": now + timedelta(seconds=self._ttl),
        }
        if principal is not None:
            claims["usr"] = str(principal.user_id)
        return self._keys.get().sign(claims)

    async def verify(self, token: str) -> ServiceClaims:
        """The claims of a token addressed to this group by a trusted one; else NotAuthorizedException."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError as exc:
            raise NotAuthorizedException(f"service token refused: {exc}") from None
        if not isinstance(issuer, str) or (caller := self._callers.get(issuer)) is None:
            raise NotAuthorizedException("service token refused: unknown issuer")
        key = await caller.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise NotAuthorizedException(f"service token refused: {KEYS_NOT_LEARNT} {issuer!r}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[KEY_ALGORITHM],
                audience=self._group,
                issuer=issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise NotAuthorizedException(f"service token refused: {exc}") from None
        try:
            principal = Principal(user_id=uuid.UUID(claims["usr"])) if "usr" in claims else None
        except (ValueError, TypeError):
            raise NotAuthorizedException("service token refused: malformed user") from None
        return ServiceClaims(issuer=issuer, principal=principal)

    async def aclose(self) -> None:
        """Stop keeping the callers' keys fresh."""
        await asyncio.gather(*(keys.stop() for keys in self._callers.values()))


class Passwords:
    """Argon2id hashing, with a decoy hash so that unknown users cost as much as known ones.

    Hashes run on a pool of ``concurrency`` threads of lowered priority, never on the event
    loop: other users' requests keep the CPU while a flood of sign-ins waits its turn, and
    memory stays at ``concurrency`` x ``memory_kib``. More than ``queue`` waiting hashes are
    refused at once (503 with Retry-After) rather than queued without end.
    """

    __slots__ = ("_decoy", "_hasher", "_in_flight", "_pool", "_room")

    def __init__(self, settings: PasswordHashSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_kib,
            parallelism=settings.parallelism,
        )
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))
        self._pool = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="password-hash", initializer=_yield_the_cpu
        )
        self._room = settings.concurrency + settings.queue
        self._in_flight = 0

    async def hash(self, password: str) -> str:
        hashed: str = await self._off_the_loop(self._hasher.hash, password)
        return hashed

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; with no hash, spends the same time and says False."""
        matches: bool = await self._off_the_loop(self._verify, password_hash, password)
        return matches

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            matches = self._hasher.verify(password_hash or self._decoy, password)
        except (VerificationError, InvalidHashError):
            return False
        return matches and password_hash is not None

    async def _off_the_loop(self, work: Callable[..., R], *args: Any) -> R:
        if self._in_flight >= self._room:
            raise DependencyUnavailable("Too many sign-ins at once; try again shortly.", retry_after=1)
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self._in_flight -= 1


def _yield_the_cpu() -> None:
    """Lower this hashing thread's priority (Linux: per thread), so request handling comes first."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)
