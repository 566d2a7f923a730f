"""Settings from the environment: the only place env keys are defined.

Every key is one `EnvKey` row in `ENV_KEYS` (name, description, parser, default, secret).
`load_settings(environ)` parses all of them, collects every problem, and raises one
`ConfigError` listing them all; it does no I/O, so it runs before anything touches the
database or the network. Secret values are wrapped in `Secret`, whose repr is masked, and
every one of them (the derived webhook secret too) is in `Settings.secret_values()`, which
the log formatter masks.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

BOT_MODES = ("polling", "webhook")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Telegram tokens are "<bot id>:<35 url-safe chars>"; we accept any length >= 20 for the tail.
BOT_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
BOT_TOKEN_RULE = ("must be '<bot id>:<secret>' as @BotFather issues it: 3 or more digits, "
                  "a colon, then 20 or more of A-Z a-z 0-9 _ -")
# Telegram allows 1-256 chars of its alphabet; at least 16 because the log formatter masks
# every occurrence of a secret (a short one would mask ordinary text) and to resist guessing.
WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{16,256}")
WEBHOOK_SECRET_RULE = "must be 16-256 characters of A-Z a-z 0-9 _ -"
# The derived webhook secret: HMAC-SHA256(bot token, label), hex (64 chars, in the alphabet).
WEBHOOK_SECRET_LABEL = b"kiebot-webhook-secret-v1"
LOOPBACK_NAMES = ("localhost",)
# The Support button shows SUPPORT_TEXT in one message, with room for the contact line.
SUPPORT_TEXT_MAX_CHARS = 1000
MIN_API_KEY_CHARS = 16


class Secret:
    """Hold a secret string whose repr and str are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """Return the secret value; call only where it is sent to its owner."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ConfigError(Exception):
    """One or more environment keys are missing or invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


# ---- parsers: each takes the raw string and returns the value or raises ValueError ----


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _float_in(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _choice(*options: str, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _telegram_username(raw: str) -> str:
    value = raw.strip().removeprefix("https://t.me/").removeprefix("@")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", value):
        raise ValueError("must be a Telegram username (@name, 4-32 of A-Z a-z 0-9 _, "
                         f"starting with a letter), got {raw!r}")
    return value


def _support_text(raw: str) -> str:
    value = raw.strip()
    if len(value) > SUPPORT_TEXT_MAX_CHARS:
        raise ValueError(f"must be at most {SUPPORT_TEXT_MAX_CHARS} characters, "
                         f"got {len(value)}")
    return value


def _api_key(raw: str) -> Secret:
    # Secrets are masked wherever they occur in a log line: a very short one would mask
    # ordinary words, and would be a weak key anyway.
    if len(raw.strip()) < MIN_API_KEY_CHARS:
        raise ValueError(f"must be at least {MIN_API_KEY_CHARS} characters")
    return Secret(raw.strip())


def _bot_token(raw: str) -> Secret:
    if not BOT_TOKEN_RE.match(raw.strip()):
        # Never echo the value: it is a secret even when malformed.
        raise ValueError(BOT_TOKEN_RULE)
    return Secret(raw.strip())


def _webhook_secret(raw: str) -> Secret:
    if not WEBHOOK_SECRET_RE.fullmatch(raw.strip()):
        raise ValueError(WEBHOOK_SECRET_RULE)  # never echoed: it is a secret
    return Secret(raw.strip())


def derive_webhook_secret(bot_token: Secret) -> Secret:
    """Return the webhook secret used when WEBHOOK_SECRET_TOKEN is unset."""
    digest = hmac.new(bot_token.get().encode(), WEBHOOK_SECRET_LABEL, hashlib.sha256)
    return Secret(digest.hexdigest())


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in LOOPBACK_NAMES


def _postgres_url(raw: str) -> Secret:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ValueError("must be a postgresql://user:password@host:port/dbname URL")
    return Secret(raw.strip())


def _https_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    # Plain http is only allowed on loopback, for the sandbox and tests.
    if parts.scheme != "https" and not _is_loopback(parts.hostname):
        raise ValueError(f"must be an https URL (http only on loopback), got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not contain a query string or fragment")
    return value


def _admin_ids(raw: str) -> tuple[int, ...]:
    ids: list[int] = []
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise ValueError(f"must be Telegram user ids separated by commas, got {part!r}")
        ids.append(int(part))
    if not ids:
        raise ValueError("must name at least one Telegram user id")
    return tuple(ids)


def _markup(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError(f"must be a decimal number, got {raw!r}") from None
    if not value.is_finite() or not Decimal("1") <= value <= Decimal("100"):
        raise ValueError(f"must be between 1 and 100, got {raw!r}")
    return value


def _rub_per_star(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError(f"must be a decimal number of roubles, got {raw!r}") from None
    if not value.is_finite() or not Decimal("0.01") <= value <= Decimal("1000"):
        raise ValueError(f"must be between 0.01 and 1000 roubles, got {raw!r}")
    return value


def _instance_id(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,63}", raw.strip()):
        raise ValueError("must be 1-63 characters of A-Z, a-z, 0-9, '_', '.', ':' and '-'")
    return raw.strip()


def default_instance_id(environ: Mapping[str, str]) -> str:
    """Return RENDER_INSTANCE_ID when Render sets it, else host-pid."""
    render_id = environ.get("RENDER_INSTANCE_ID", "").strip()
    if render_id:
        return render_id[:63]
    return f"{socket.gethostname()[:40]}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class EnvKey:
    """One environment key: its parser, its default (None = required) and what it is for."""

    name: str
    field: str
    description: str
    parse: Callable[[str], Any]
    default: str | None = None
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is None


ENV_KEYS: tuple[EnvKey, ...] = (
    # --- required (the seed's list plus what the product needs) ---
    EnvKey("ADMIN_ID", "admin_ids", "Telegram user id(s) of the operators, comma-separated.",
           _admin_ids),
    EnvKey("BOT_MODE", "bot_mode", "How updates arrive: 'polling' (getUpdates) or 'webhook'.",
           _choice(*BOT_MODES)),
    EnvKey("DATABASE_URL", "database_url", "PostgreSQL URL (postgresql://user:pass@host/db).",
           _postgres_url, secret=True),
    EnvKey("DB_MAXCONN", "db_maxconn", "Connections in this instance's pool (2-100).",
           _int_in(2, 100)),
    EnvKey("KIE_API_KEY", "kie_api_key", "Kie.ai API key (Bearer token).", _api_key,
           secret=True),
    EnvKey("PAYMENT_BANK", "payment_bank", "Bank name shown to users for top-up transfers.",
           _text),
    EnvKey("PAYMENT_CARD_HOLDER", "payment_card_holder",
           "Card holder name shown to users for top-up transfers.", _text),
    EnvKey("PAYMENT_PHONE", "payment_phone",
           "Phone number (SBP) shown to users for top-up transfers.", _text),
    EnvKey("TELEGRAM_BOT_TOKEN", "telegram_bot_token", "Bot token from @BotFather.", _bot_token,
           secret=True),
    EnvKey("WEBHOOK_BASE_URL", "webhook_base_url",
           "Public https base URL of the service (webhook and Kie callbacks are under it).",
           _https_url),
    # --- optional, with defaults ---
    EnvKey("PORT", "port", "HTTP port to listen on (0: any free port, for tests).",
           _int_in(0, 65535), default="10000"),
    EnvKey("INSTANCE_ID", "instance_id",
           "This instance's name in logs, /health and the DB (default RENDER_INSTANCE_ID or "
           "host-pid).", _instance_id, default=""),
    EnvKey("PRICE_MARKUP", "price_markup",
           "User price = Kie cost x this factor (1-100), unless an operator set the model's "
           "price in /admin.",
           _markup, default="2.0"),
    EnvKey("TELEGRAM_API_BASE", "telegram_api_base",
           "Telegram Bot API base URL (https; http only on loopback).",
           _https_url, default="https://api.telegram.org"),
    EnvKey("KIE_BASE_URL", "kie_base_url", "Kie.ai API base URL (https; http only on loopback).",
           _https_url,
           default="https://api.kie.ai"),
    EnvKey("KIE_UPLOAD_BASE_URL", "kie_upload_base_url",
           "Kie.ai file upload API base URL (https; http only on loopback).",
           _https_url, default="https://kieai.redpandaai.co"),
    EnvKey("KIE_WEBHOOK_HMAC_KEY", "kie_webhook_hmac_key",
           "Kie's webhookHmacKey: when set, every callback must carry a valid "
           "X-Webhook-Signature (unset: callbacks are checked by their per-job token only).",
           _api_key, default="", secret=True),
    EnvKey("KIE_CREATE_LIMIT", "kie_create_limit",
           "New Kie tasks the account may start per 10 s (Kie's limit is 20; its support "
           "raises it on request).", _int_in(1, 10_000), default="20"),
    EnvKey("KIE_REQUEST_TIMEOUT", "kie_request_timeout_s",
           "Seconds one Kie API request may take in all (connecting included).",
           _float_in(1, 300), default="30.0"),
    EnvKey("WEBHOOK_SECRET_TOKEN", "webhook_secret_token",
           "Secret Telegram sends with each webhook, 16-256 of A-Z a-z 0-9 _ - (default: "
           "derived from the bot token).",
           _webhook_secret, default="", secret=True),
    EnvKey("LOG_LEVEL", "log_level", "DEBUG, INFO, WARNING or ERROR.",
           _choice(*LOG_LEVELS, upper=True), default="INFO"),
    EnvKey("LEADER_RENEW_INTERVAL", "leader_renew_interval_s",
           "Seconds between leader lease renewals.", _float_in(0.1, 10), default="1.0"),
    EnvKey("LEADER_LEASE_TTL", "leader_lease_ttl_s",
           "Seconds a lease lives without renewal; also the lock session's idle timeout.",
           _float_in(1, 120), default="5.0"),
    EnvKey("LEADER_STOP_GRACE", "leader_stop_grace_s",
           "Seconds leader-only services get to stop on demotion before the process exits.",
           _float_in(0.1, 60), default="3.0"),
    EnvKey("SHUTDOWN_GRACE", "shutdown_grace_s",
           "Seconds in-flight work gets on SIGTERM (keep under Render's 30 s).",
           _float_in(0, 29), default="20.0"),
    EnvKey("DB_CONNECT_TIMEOUT", "db_connect_timeout_s", "Seconds to wait for a DB connection.",
           _float_in(0.5, 60), default="5.0"),
    EnvKey("DISPATCH_CONCURRENCY", "dispatch_concurrency",
           "Updates the leader handles at once (different chats; one chat is always serial).",
           _int_in(1, 1000), default="64"),
    EnvKey("INBOX_RETENTION_HOURS", "inbox_retention_hours",
           "Hours a handled Telegram update is kept before the leader prunes it.",
           _int_in(1, 24 * 90), default="72"),
    EnvKey("DB_STATEMENT_TIMEOUT", "db_statement_timeout_s",
           "Seconds a pooled statement may run before PostgreSQL cancels it.",
           _float_in(0.5, 600), default="30.0"),
    # --- generation jobs (services/generation) ---
    EnvKey("MAX_ACTIVE_JOBS", "max_active_jobs",
           "Generations one user may have queued or running at once.", _int_in(1, 100),
           default="2"),
    EnvKey("FREE_DAILY_QUOTA", "free_daily_quota",
           "Free-tier generations per user per day (UTC); failed ones do not count.",
           _int_in(0, 1000), default="5"),
    EnvKey("MAX_SUBMIT_ATTEMPTS", "max_submit_attempts",
           "Times a job is sent to Kie before it fails and its hold is released.",
           _int_in(1, 20), default="3"),
    EnvKey("JOB_EXPIRY_IMAGE", "job_expiry_image_s",
           "Seconds an image job may take before it expires and its hold is released.",
           _float_in(60, 86400), default="900"),
    EnvKey("JOB_EXPIRY_VIDEO", "job_expiry_video_s",
           "Seconds a video job may take before it expires and its hold is released.",
           _float_in(60, 86400), default="3600"),
    EnvKey("JOB_EXPIRY_AUDIO", "job_expiry_audio_s",
           "Seconds an audio job may take before it expires and its hold is released.",
           _float_in(60, 86400), default="1200"),
    EnvKey("JOB_EXPIRY_UPSCALE", "job_expiry_upscale_s",
           "Seconds an upscale job may take before it expires and its hold is released.",
           _float_in(60, 86400), default="1800"),
    # --- the chat screens ---
    EnvKey("SUPPORT_TELEGRAM", "support_telegram",
           "Telegram username users write to for help (@name), behind the Support button.",
           _telegram_username, default=""),
    EnvKey("SUPPORT_TEXT", "support_text",
           f"Words the Support button shows above the contact (up to "
           f"{SUPPORT_TEXT_MAX_CHARS} characters).", _support_text, default=""),
    # --- money in (services/payments) ---
    EnvKey("PAYMENT_CARD", "payment_card",
           "Card number shown to users for top-up transfers (unset: only the SBP phone).",
           _text, default=""),
    EnvKey("TOPUP_MIN_RUB", "topup_min_rub", "Smallest top-up by bank transfer, in roubles.",
           _int_in(1, 1_000_000), default="100"),
    EnvKey("TOPUP_MAX_RUB", "topup_max_rub", "Largest top-up by bank transfer, in roubles.",
           _int_in(1, 1_000_000), default="100000"),
    EnvKey("PAYMENT_PENDING_HOURS", "payment_pending_hours",
           "Hours a transfer waits for an operator's decision before it expires.",
           _float_in(0.01, 720), default="48"),
    EnvKey("STARS_RUB_RATE", "stars_rub_rate",
           "Roubles credited per Telegram Star, e.g. 1.2 (unset: Stars are off).",
           _rub_per_star, default=""),
    # --- operators' broadcasts (services/broadcast) ---
    EnvKey("BROADCAST_RATE", "broadcast_rate", "Broadcast messages the leader sends per second "
           "(under Telegram's ~30/s per bot, leaving room for replies).",
           _float_in(0.1, 30), default="25"),
)

REQUIRED_ENV_KEYS: tuple[str, ...] = tuple(k.name for k in ENV_KEYS if k.required)
SECRET_ENV_KEYS: tuple[str, ...] = tuple(k.name for k in ENV_KEYS if k.secret)


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed, validated configuration of one instance."""

    admin_ids: tuple[int, ...]
    bot_mode: str
    database_url: Secret
    db_maxconn: int
    kie_api_key: Secret
    payment_bank: str
    payment_card_holder: str
    payment_phone: str
    telegram_bot_token: Secret
    webhook_base_url: str
    port: int
    instance_id: str
    price_markup: Decimal
    telegram_api_base: str
    kie_base_url: str
    kie_upload_base_url: str
    kie_webhook_hmac_key: Secret | None
    kie_create_limit: int
    kie_request_timeout_s: float
    webhook_secret_token: Secret   # WEBHOOK_SECRET_TOKEN, or derived from the bot token
    log_level: str
    leader_renew_interval_s: float
    leader_lease_ttl_s: float
    leader_stop_grace_s: float
    shutdown_grace_s: float
    db_connect_timeout_s: float
    dispatch_concurrency: int
    inbox_retention_hours: int
    db_statement_timeout_s: float
    max_active_jobs: int
    free_daily_quota: int
    max_submit_attempts: int
    job_expiry_image_s: float
    job_expiry_video_s: float
    job_expiry_audio_s: float
    job_expiry_upscale_s: float
    support_telegram: str | None
    support_text: str | None
    payment_card: str | None
    topup_min_rub: int
    topup_max_rub: int
    payment_pending_hours: float
    stars_rub_rate: Decimal | None
    broadcast_rate: float

    def secret_values(self) -> tuple[str, ...]:
        """Return every secret value, for log and output scrubbing."""
        values = [
            getattr(self, f.name).get()
            for f in fields(self)
            if isinstance(getattr(self, f.name), Secret)
        ]
        return tuple(v for v in values if v)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Parse and validate every key; raise one ConfigError naming all problems."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key in ENV_KEYS:
        raw = environ.get(key.name)
        if raw is None or not raw.strip():
            if key.required:
                problems.append(f"{key.name}: missing ({key.description})")
                continue
            raw = key.default or ""
            if not raw:
                values[key.field] = None
                continue
        try:
            values[key.field] = key.parse(raw)
        except ValueError as exc:
            problems.append(f"{key.name}: {exc}")
    _check_cross_field(values, problems)
    if problems:
        raise ConfigError(problems)
    if values["instance_id"] is None:
        values["instance_id"] = default_instance_id(environ)
    if values["webhook_secret_token"] is None:
        values["webhook_secret_token"] = derive_webhook_secret(values["telegram_bot_token"])
    return Settings(**values)


def _check_cross_field(values: Mapping[str, Any], problems: list[str]) -> None:
    low, high = values.get("topup_min_rub"), values.get("topup_max_rub")
    if low is not None and high is not None and low > high:
        problems.append(f"TOPUP_MAX_RUB: must be at least TOPUP_MIN_RUB ({low}), got {high}")
    renew, ttl = values.get("leader_renew_interval_s"), values.get("leader_lease_ttl_s")
    if renew is not None and ttl is not None and ttl < 3 * renew:
        problems.append(
            f"LEADER_LEASE_TTL: must be at least 3 x LEADER_RENEW_INTERVAL ({3 * renew:g} s), "
            f"got {ttl:g} s"
        )
