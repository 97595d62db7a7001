"""Configuration: TOML files, then environment variables, decoded into frozen Structs.

Layers, each overriding the one before:

1. ``config/default.toml``;
2. ``config/<profile>.toml`` when ``TESSERA_PROFILE`` names a profile;
3. the files named by ``TESSERA_CONFIG`` (several: separated by ``:``, later ones win);
4. ``TESSERA_<SECTION>__<KEY>=value`` variables (``__`` separates levels);
5. ``TESSERA_<SECTION>__<KEY>_FILE=/path`` variables, whose file holds a secret.

An unknown key or a value of the wrong type stops start-up with a message naming the key.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from app.kernel.paths import CONFIG_DIR

__all__ = (
    "ConfigError",
    "DatabaseSettings",
    "EventSettings",
    "ModuleDatabaseSettings",
    "PasswordHashSettings",
    "GroupSettings",
    "MetricsSettings",
    "RpcSettings",
    "SagaSettings",
    "Secret",
    "SecuritySettings",
    "ThrottleSettings",
    "ServerSettings",
    "Settings",
    "TopologySettings",
    "UiSettings",
    "load_settings",
)

ENV_PREFIX = "TESSERA_"
# Read by other code, not configuration keys. TESSERA_CRASH_AT is the fault hook (app.kernel.faults).
_RESERVED = frozenset({"TESSERA_PROFILE", "TESSERA_CONFIG", "TESSERA_GROUP", "TESSERA_CRASH_AT"})
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


class Secret(str):
    """A string that never shows itself in a repr, a log line or an error message."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('**********')" if self else "Secret('')"

    def reveal(self) -> str:
        return str.__str__(self)


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = 1_048_576
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"  # text: readable lines for a terminal (dev)
    request_log: bool = True  # one line per request: method, route, status, duration, ids
    # Peers whose X-Forwarded-For names the client (a load balancer, a split's gateway): the
    # address that per-address throttles count. Anyone else's header is ignored.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # What a client may send, and how slowly (see app.kernel.server).
    max_header_bytes: int = 16_384  # request line and headers; beyond: 431
    header_timeout_seconds: float = 10.0  # to send the whole head once it started: else 408
    body_timeout_seconds: float = 30.0  # between two chunks of a body: else the connection closes
    keep_alive_seconds: float = 5.0  # an idle connection is closed after this
    # SIGTERM: readiness answers 503 this long while everything else is served (load balancers
    # stop sending), then the listener closes and requests under way get shutdown_grace_seconds
    # to finish. Keep the sum under the orchestrator's grace period (Kubernetes: 30 s).
    drain_seconds: float = 0.0
    shutdown_grace_seconds: float = 20.0
    # Hosts this server answers for ("*": any; "*.example.com": its subdomains); others: 400.
    allowed_hosts: list[str] = msgspec.field(default_factory=lambda: ["*"])
    cors_origins: list[str] = msgspec.field(default_factory=list)  # browser origins allowed (CORS); none: off
    hsts_seconds: int = 0  # Strict-Transport-Security max-age; set it where TLS ends in front of us
    api_docs: bool = True  # the OpenAPI document and docs page at /schema


class MetricsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Prometheus exposition: every process (each worker, each group of a split) serves its own."""

    enabled: bool = True
    path: str = "/metrics"
    # 0: on the application's port, beside the API. Otherwise a port of its own (an operator's
    # network only), served by `tessera serve` for every worker of the process.
    port: int = 0


class PasswordHashSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Argon2id cost; OWASP's 2023 floor is m=19 MiB, t=2, p=1."""

    time_cost: int = 3
    memory_kib: int = 65_536
    parallelism: int = 2
    # Hashes computed at once per process, on threads of lowered priority off the event loop:
    # a flood of sign-ins queues here instead of taking the CPU (and memory_kib each) from
    # everyone else. Beyond `queue` waiting, a sign-in is answered 503 with Retry-After.
    concurrency: int = 1
    queue: int = 64


class SecuritySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    issuer: str = "tessera"
    audience: str = "tessera-api"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 1_209_600
    # Identity's users' token key pair is derived from this secret (Ed25519; see
    # app.kernel.signing_keys). Only the process where identity runs needs it.
    signing_key: Secret = Secret("")
    # Earlier signing keys whose public halves stay published after a rotation, until the
    # tokens they signed have expired (one access-token lifetime); then drop them.
    previous_signing_keys: list[Secret] = msgspec.field(default_factory=list)
    # How often a process without identity fetches its published keys (and soon after a token
    # names an unknown key).
    jwks_refresh_seconds: float = 60.0
    # This group's service key pair is derived from this secret (Ed25519): it signs the
    # short-lived tokens the group presents to another's /internal routes. Give each group its
    # own: groups sharing one secret still run, but any of them could then derive the others'.
    service_signing_key: Secret = Secret("")
    # Earlier service secrets whose public halves stay published after a rotation (one
    # service-token lifetime is enough), then drop them.
    previous_service_signing_keys: list[Secret] = msgspec.field(default_factory=list)
    service_token_ttl_seconds: int = 60
    # How often each process asks identity whose tokens were voided (deactivation, signing out
    # everywhere): the longest a voided access token may still be accepted.
    revocation_poll_seconds: float = 0.5
    # Development convenience: with no key configured, make one in the data dir and keep it.
    generate_signing_key: bool = False
    password_hash: PasswordHashSettings = msgspec.field(default_factory=PasswordHashSettings)


class ThrottleSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits on credentials and costly lookups: beyond them, 429 with Retry-After.

    Counts live in a store shared by every process that uses it: ``redis`` (at ``redis_url``)
    for several workers or a split, ``memory`` (one process's own counts) otherwise.
    """

    enabled: bool = True
    store: Literal["memory", "redis"] = "memory"
    redis_url: Secret = Secret("redis://127.0.0.1:6379/0")
    failed_logins_per_account: int = 5
    failed_login_window_seconds: int = 300
    logins_per_address_per_minute: int = 30
    registrations_per_address_per_minute: int = 10
    user_searches_per_user_per_minute: int = 60


class ModuleDatabaseSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Secret = Secret("")


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Empty: each module gets its own SQLite file in the data dir.
    url: Secret = Secret("")
    echo: bool = False
    pool_size: int = 16  # the most connections one module holds in one process
    # PostgreSQL: the connections the whole deployment may hold, every worker of every group
    # together; each module's pool gets its share. Checked against the server at start-up.
    max_connections: int = 80
    pool_timeout_seconds: float = 5.0  # a request waits this long for a connection, then 503
    modules: dict[str, ModuleDatabaseSettings] = msgspec.field(default_factory=dict)
    # PostgreSQL: each module works as a role of its own (role_prefix + module), which owns the
    # module's schema and may use no other; `tessera db upgrade` makes it. The URL's user must
    # be allowed to create roles (or the roles made beforehand, each granted to that user).
    module_roles: bool = False
    role_prefix: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,40}$")] = "tessera_"


class GroupSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Modules that run together in one process, and where that process answers."""

    modules: list[str] = msgspec.field(default_factory=list)
    url: str = ""


class TopologySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # No groups: every module in this one process. See config/split.toml for three processes.
    groups: dict[str, GroupSettings] = msgspec.field(default_factory=dict)

    def port_of(self, group: str) -> int | None:
        """The port ``group`` listens on, from its URL (None: the URL names none)."""
        spec = self.groups.get(group)
        if spec is None:
            raise ConfigError(f"topology.groups.{group}: no such group (groups: {sorted(self.groups)})")
        return urlsplit(spec.url).port if spec.url else None


class RpcSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How remote adapters call other groups: timeouts, retries, circuit breaking."""

    timeout_seconds: float = 2.0
    proxy_timeout_seconds: float = 15.0  # the gateway's budget for a proxied public request
    attempts: int = 3  # for calls the contract marks idempotent; others are tried once
    backoff_initial_seconds: float = 0.05
    backoff_max_seconds: float = 0.5
    breaker_failure_rate: float = 50.0
    breaker_window: int = 20
    breaker_minimum_calls: int = 5
    breaker_open_seconds: float = 5.0
    breaker_half_open_calls: int = 2


class EventSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The event bus, the outbox relays that feed it, and the consumers' inboxes."""

    bus: str = "inprocess"  # inprocess | nats | rabbitmq; a split topology needs a broker
    # Prefix of every stream, subject, exchange and queue name: deployments sharing a broker
    # stay apart. Empty: derived from the deployment id `tessera db upgrade` records.
    namespace: str = ""
    nats_url: Secret = Secret("nats://127.0.0.1:4222")
    rabbitmq_url: Secret = Secret("amqp://guest:guest@127.0.0.1:5672/")
    publish_timeout_seconds: float = 5.0  # longer without a broker's confirmation: BusUnavailable
    relay_batch: int = 100  # events claimed per round
    # Rounds a module's relay has in flight at once: one claims and marks while another's
    # events are applied. A key's events are never in two rounds (a claim takes an event only
    # with every earlier pending one of its key), so per-key order holds.
    relay_rounds: Annotated[int, msgspec.Meta(ge=1)] = 2
    consume_batch: int = 100  # a broker consumer's messages in hand at once (applied in one transaction)
    relay_poll_seconds: float = 0.25  # how often an idle relay looks (commits wake it at once)
    lease_seconds: float = 30.0  # a claim not published by then is free for another relay
    max_attempts: int = 10  # an event refused this often is marked failed (`tessera events retry`)
    backoff_initial_seconds: float = 0.1  # between attempts, and while the broker is down
    backoff_max_seconds: float = 10.0
    redelivery_delay_seconds: float = 1.0  # before a broker redelivers a message a handler refused
    # NATS: a message neither acknowledged nor reported in progress by then is redelivered
    # (after a consumer died mid-message, say). RabbitMQ redelivers when the connection drops.
    ack_wait_seconds: float = 30.0
    retention_hours: float = 168.0  # published outbox rows and inbox rows are pruned after this
    prune_interval_seconds: float = 300.0
    status_interval_seconds: float = 5.0  # how often the outbox backlog and bus gauges are refreshed


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Copies of other modules' answers a process keeps, and for how long at most."""

    # Users' profiles (display names) as task views show them: forgotten at once by the
    # process that handles the user's change event, kept this long at most elsewhere. 0: none.
    profile_seconds: float = 5.0


class SagaSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The saga orchestrators of the modules that run sagas (account closures)."""

    poll_seconds: float = 1.0  # how often due runs are looked for
    # An orchestrator holds each run it drives this long, renewed while it drives it; a run
    # whose orchestrator died is resumed by another once its lease has lapsed.
    lease_seconds: float = 15.0


class UiSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The web UI: pages for people and the ops console, served beside the API."""

    enabled: bool = True
    # Session and CSRF cookies go only over HTTPS (production: TLS ends in front of us).
    secure_cookies: bool = False
    # How often an open page asks for the unread count (the bell), in seconds.
    bell_seconds: float = 1.0


class SimulateSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One process behaving, in latency and failures, as a split would (``tessera simulate``).

    ``remote`` lists the groups that would run apart, each its modules joined by ``+``
    (``["identity+accounts", "tasks"]``); the other modules run together. A call between
    modules of different groups crosses the simulated network; with ``gateway``, so does
    every public API request (a pure gateway proxies it) and every call the web pages make.
    """

    remote: list[str] = msgspec.field(default_factory=list)
    gateway: bool = True
    latencies_ms: list[float] = msgspec.field(default_factory=list)  # one call's crossing, drawn at random
    gateway_latencies_ms: list[float] = msgspec.field(
        default_factory=list
    )  # the gateway's hop (none: as a call)
    failure_rate: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    record_file: str = ""  # calls made inside a caller's open unit of work are noted here (JSON lines)

    def as_layer(self) -> str:
        """This section as a configuration file (TOML; its values are written alike in JSON)."""
        values = msgspec.to_builtins(self)
        return "[simulate]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())

    def groups(self) -> dict[str, str]:
        """The group each module named in ``remote`` runs in, by module."""
        return {module: entry for entry in self.remote for module in entry.split("+")}


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    profile: str = "default"
    data_dir: str = "./data"
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    topology: TopologySettings = msgspec.field(default_factory=TopologySettings)
    rpc: RpcSettings = msgspec.field(default_factory=RpcSettings)
    events: EventSettings = msgspec.field(default_factory=EventSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    throttle: ThrottleSettings = msgspec.field(default_factory=ThrottleSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    sagas: SagaSettings = msgspec.field(default_factory=SagaSettings)
    ui: UiSettings = msgspec.field(default_factory=UiSettings)
    simulate: SimulateSettings = msgspec.field(default_factory=SimulateSettings)


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    config_dir: Path = CONFIG_DIR,
) -> Settings:
    """Read every configuration layer and decode the result, or raise ConfigError."""
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = _read_toml(config_dir / "default.toml")
    profile = env.get("TESSERA_PROFILE", "").strip()
    if profile:
        profile_file = config_dir / f"{profile}.toml"
        if not profile_file.is_file():
            raise ConfigError(f"TESSERA_PROFILE={profile!r}: no file {profile_file}")
        _deep_merge(merged, _read_toml(profile_file))
        merged["profile"] = profile
    for extra in env.get("TESSERA_CONFIG", "").split(os.pathsep):
        if extra.strip():
            _deep_merge(merged, _read_toml(Path(extra.strip())))
    _deep_merge(merged, _environment_overrides(env))
    try:
        return msgspec.convert(merged, Settings, strict=False, dec_hook=_decode_secret)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_name_the_key(str(exc))}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _environment_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _RESERVED:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if path[-1].endswith("_file"):
            path[-1] = path[-1][: -len("_file")]
            value = _read_secret_file(name, value)
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return overrides


def _read_secret_file(variable: str, location: str) -> str:
    try:
        return Path(location).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read secret file: {exc.strerror}") from None


def _deep_merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _decode_secret(type_: type, value: Any) -> Any:
    if type_ is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError


def _name_the_key(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.server.port`"; people write server.port.
    text, _, where = message.partition(" - at ")
    key = where.strip("`").removeprefix("$").lstrip(".")
    if unknown := _UNKNOWN_FIELD.fullmatch(text):
        return f"{'.'.join(filter(None, (key, unknown['name'])))}: unknown key"
    return f"{key}: {text}" if key else text
