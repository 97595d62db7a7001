"""Token keys: Ed25519 pairs whose private half only the signer holds.

Two kinds of token are signed this way. Users' access tokens: signed by identity alone.
Service tokens (one group calling another's ``/internal`` routes): each group signs its own
with a key pair of its own, so a callee knows which group called and a group can never speak
for another.

Identity signs access tokens with its current key (EdDSA, the key's ``kid`` in the header)
and publishes the public halves as a JWK Set at ``/.well-known/jwks.json``. Every other
process verifies with those public keys only, so a compromised module can read tokens but
never mint one.

Each key pair is derived from a secret (HKDF-SHA256, with what the key is for in the
derivation), so a deployment that gives ``security.signing_key`` as before keeps starting:
that secret now stands for identity's current key pair; ``security.service_signing_key``
stands for the group's own service key pair. Rotation: move the old secret to
``security.previous_signing_keys`` (``previous_service_signing_keys``) and give a new one;
the old public key stays published (tokens it signed verify until they expire), then drop
it from the list.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.kernel.refresher import Refresher

log = logging.getLogger("tessera.security")

__all__ = ("ALGORITHM", "JWKS_PATH", "USER_TOKENS", "PublishedKeys", "SigningKeys", "service_tokens_of")

ALGORITHM = "EdDSA"
JWKS_PATH = "/.well-known/jwks.json"
USER_TOKENS = b"tessera:user-token-signing-key:v1"


def service_tokens_of(group: str) -> bytes:
    """The derivation of ``group``'s service key pair: one secret never gives two groups one key."""
    return b"tessera:service-token-signing-key:v1:" + group.encode()


class SigningKeys:
    """One signer's key pairs: the current one signs, every one is published."""

    __slots__ = ("_current", "_current_kid", "_published")

    def __init__(
        self, current: str, previous: Sequence[str] = (), *, derivation: bytes = USER_TOKENS
    ) -> None:
        self._current = _derive(current, derivation)
        self._current_kid = _kid(self._current.public_key())
        pairs = [self._current, *(_derive(secret, derivation) for secret in previous)]
        self._published = {_kid(p.public_key()): p.public_key() for p in pairs}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._current, algorithm=ALGORITHM, headers={"kid": self._current_kid})

    @property
    def current_kid(self) -> str:
        return self._current_kid

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self._published.get(kid)

    def jwks(self) -> dict[str, Any]:
        """The JWK Set (RFC 7517, OKP keys of RFC 8037) of every published public key."""
        return {"keys": [_jwk(kid, key) for kid, key in self._published.items()]}


class PublishedKeys:
    """The public keys a signer publishes, as a process without them fetches and caches them.

    Refreshed every ``refresh_seconds`` once started, and soon after a token names a key not
    yet known (a rotation): at most once every ``MIN_GAP`` seconds, so forged ``kid`` values
    cannot make it hammer the signer. Until a fetch succeeds, every token is refused.
    """

    MIN_GAP = 2.0
    RETRY_GAP = 0.25  # after a fetch that failed

    __slots__ = ("_fetch", "_fetched_at", "_keys", "_lock", "_name", "_refresher")

    def __init__(
        self,
        fetch: Callable[[], Awaitable[dict[str, Any]]],
        *,
        refresh_seconds: float,
        name: str = "token keys",
    ) -> None:
        self._fetch = fetch
        self._name = name
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._refresher = Refresher(
            name,
            self._refresh,
            interval=lambda failing: self.MIN_GAP if failing or not self._keys else refresh_seconds,
            min_gap=self.MIN_GAP,
        )

    @property
    def known(self) -> bool:
        """Whether any key has been fetched: before that, every token is refused."""
        return bool(self._keys)

    def public_key(self, kid: str) -> Any | None:
        found = self._keys.get(kid)
        if found is None:
            self._refresher.wake()  # a key we do not know: look again soon
        return found

    async def find(self, kid: str) -> Any | None:
        """The key named ``kid``, fetched now if it is not known (and no fetch was just made).

        For a signer that calls first and is asked later: the callee learns a new caller's
        keys on its first call instead of refusing it until the next refresh.
        """
        if kid not in self._keys:
            async with self._lock:  # many calls naming one new key wait for one fetch
                if kid not in self._keys and time.monotonic() - self._fetched_at >= self.MIN_GAP:
                    try:
                        await self._refresh()
                    except Exception as exc:  # the signer is away: the token is refused, not the process
                        log.warning("%s cannot be fetched: %s: %s", self._name, type(exc).__name__, exc)
        found = self._keys.get(kid)
        if found is not None:
            await self._refresher.start(wait_first=True)  # from now on kept fresh (a no-op once started)
        return found

    def replace(self, jwks: dict[str, Any]) -> None:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
        self._keys = {k.key_id: k.key for k in keys if k.key_id and k.algorithm_name == ALGORITHM}

    async def start(self) -> None:
        await self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            self.replace(await self._fetch())
        except Exception:
            # The signer did not answer (a caller whose first call comes while it is still
            # starting, say): the next token naming its key may ask again after RETRY_GAP.
            self._fetched_at -= self.MIN_GAP - self.RETRY_GAP
            raise


def _derive(secret: str, derivation: bytes) -> Ed25519PrivateKey:
    seed = HKDF(algorithm=SHA256(), length=32, salt=None, info=derivation).derive(secret.encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _kid(key: Ed25519PublicKey) -> str:
    """RFC 7638's thumbprint of the key: the same key always has the same id."""
    canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{_b64(_raw(key))}"}}'.encode()
    return _b64(hashlib.sha256(canonical).digest())


def _jwk(kid: str, key: Ed25519PublicKey) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(_raw(key)), "kid": kid, "alg": ALGORITHM, "use": "sig"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
