"""Run-time settings of the Kie.ai sandbox: error style, limits, timings, credits, media sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

DEFAULT_RATE_LIMIT_TASKS: Final[int] = 20  # Kie: 20 new generation requests ...
DEFAULT_RATE_LIMIT_WINDOW_S: Final[float] = 10.0  # ... per 10 s, per key
DEFAULT_TASK_DURATION_S: Final[float] = 0.2
DEFAULT_CALLBACK_TIMEOUT_S: Final[float] = 15.0  # family pages: 15 s
DEFAULT_CALLBACK_RETRIES: Final[int] = 3  # family pages: 3 retries, then no more callbacks
DEFAULT_CALLBACK_RETRY_DELAY_S: Final[float] = 1.0
DEFAULT_INITIAL_CREDITS: Final[float] = 1_000_000.0
DEFAULT_TASK_COST_CREDITS: Final[float] = 1.0
DEFAULT_RESULT_TTL_S: Final[float] = 24 * 3600.0  # recordInfo advice: "typically 24 hours"
DEFAULT_UPLOAD_TTL_S: Final[float] = 24 * 3600.0  # the shorter of the documented 24 h / 3 days
DEFAULT_DOWNLOAD_URL_TTL_S: Final[float] = 20 * 60.0  # common/download-url: 20 minutes
DEFAULT_IMAGE_LONG_SIDE_PX: Final[int] = 512
DEFAULT_VIDEO_LONG_SIDE_PX: Final[int] = 256
DEFAULT_VIDEO_DURATION_S: Final[float] = 5.0
DEFAULT_AUDIO_DURATION_S: Final[float] = 2.0
DEFAULT_URL_UPLOAD_TIMEOUT_S: Final[float] = 30.0  # Kie: 30 s download timeout
DEFAULT_MAX_REQUEST_LOG_ITEMS: Final[int] = 100_000
DEFAULT_MAX_CALLBACK_LOG_ITEMS: Final[int] = 100_000
DEFAULT_CALLBACK_CONCURRENCY: Final[int] = 64
MAX_MEDIA_BYTES: Final[int] = 60 * 1024 * 1024
POSITIVE_KEYS: Final[frozenset[str]] = frozenset(
    {
        "rate_limit_tasks",
        "rate_limit_window_s",
        "callback_timeout_s",
        "callback_concurrency",
        "image_long_side_px",
        "video_long_side_px",
        "video_duration_s",
        "audio_duration_s",
        "url_upload_timeout_s",
        "max_request_log_items",
        "max_callback_log_items",
    }
)
MEDIA_SIZE_KEYS: Final[frozenset[str]] = frozenset({"image_bytes", "video_bytes", "audio_bytes"})


@dataclass(slots=True)
class KieSandboxConfig:
    """Hold the tunable behaviour of the Kie sandbox (POST /_sandbox/config changes it)."""

    # Errors go in the body `code` with HTTP 200 (Kie's documented default); true also sets
    # the HTTP status to the code.
    http_status_errors: bool = False
    rate_limit_enabled: bool = True
    rate_limit_tasks: int = DEFAULT_RATE_LIMIT_TASKS
    rate_limit_window_s: float = DEFAULT_RATE_LIMIT_WINDOW_S
    # waiting -> queuing -> generating take 10 % / 10 % / 80 % of this.
    task_duration_s: float = DEFAULT_TASK_DURATION_S
    callback_timeout_s: float = DEFAULT_CALLBACK_TIMEOUT_S
    callback_retries: int = DEFAULT_CALLBACK_RETRIES
    callback_retry_delay_s: float = DEFAULT_CALLBACK_RETRY_DELAY_S
    callback_concurrency: int = DEFAULT_CALLBACK_CONCURRENCY
    # Kie's `webhookHmacKey`: when set, callbacks carry X-Webhook-Timestamp/-Signature.
    webhook_hmac_key: str | None = None
    initial_credits: float = DEFAULT_INITIAL_CREDITS
    task_cost_credits: float = DEFAULT_TASK_COST_CREDITS
    refund_failed: bool = True
    result_ttl_s: float = DEFAULT_RESULT_TTL_S
    upload_ttl_s: float = DEFAULT_UPLOAD_TTL_S
    download_url_ttl_s: float = DEFAULT_DOWNLOAD_URL_TTL_S
    # Result sizes in bytes (0 = the natural, small size); padded inside the container.
    image_bytes: int = 0
    video_bytes: int = 0
    audio_bytes: int = 0
    image_long_side_px: int = DEFAULT_IMAGE_LONG_SIDE_PX
    video_long_side_px: int = DEFAULT_VIDEO_LONG_SIDE_PX
    video_duration_s: float = DEFAULT_VIDEO_DURATION_S
    audio_duration_s: float = DEFAULT_AUDIO_DURATION_S
    url_upload_timeout_s: float = DEFAULT_URL_UPLOAD_TIMEOUT_S
    fault_seed: int = 0
    max_request_log_items: int = DEFAULT_MAX_REQUEST_LOG_ITEMS
    max_callback_log_items: int = DEFAULT_MAX_CALLBACK_LOG_ITEMS

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict (the HMAC key masked)."""
        result = asdict(self)
        if result["webhook_hmac_key"]:
            result["webhook_hmac_key"] = "***"
        return result

    def copy(self) -> KieSandboxConfig:
        """Return an independent copy of these settings."""
        return KieSandboxConfig(**asdict(self))

    def assign(self, other: KieSandboxConfig) -> None:
        """Take every setting of `other` (objects holding this config see the change)."""
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, validating names, types and ranges before changing anything."""
        validated: dict[str, Any] = {}
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown config key {name!r}")
            validated[name] = _checked(name, getattr(self, name), value)
        for name, value in validated.items():
            setattr(self, name, value)


def _checked(name: str, current: Any, value: Any) -> Any:
    """Return `value` checked against the type of the current setting and its range."""
    if name == "webhook_hmac_key":
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be a non-empty string or null")
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if isinstance(current, int) and not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if value < 0 or (name in POSITIVE_KEYS and value <= 0):
        raise ValueError(f"{name} must be {'> 0' if name in POSITIVE_KEYS else '>= 0'}")
    if name in MEDIA_SIZE_KEYS and value > MAX_MEDIA_BYTES:
        raise ValueError(f"{name} must be at most {MAX_MEDIA_BYTES}")
    return value if isinstance(current, int) else float(value)
