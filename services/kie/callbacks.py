"""Kie callbacks: where the task id sits in a body, and the optional HMAC signature check.

With a `webhookHmacKey` set in Kie's dashboard every callback carries
`X-Webhook-Timestamp` (Unix seconds) and
`X-Webhook-Signature = base64(HMAC-SHA256(key, task_id + "." + timestamp))` (kie_api.md §3).
Only the task id and the timestamp are signed, not the body, so the receiver still checks the
per-job token in the callback URL; the signature adds proof the call came from Kie, and the
timestamp tolerance bounds replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Webhook-Signature"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
# Kie publishes no replay window; five minutes absorbs clock skew and its retry delays.
DEFAULT_TOLERANCE_S = 300
# A timestamp with more digits than this is not Unix seconds.
MAX_TIMESTAMP_DIGITS = 12


def sign_callback(key: str, task_id: str, timestamp: str) -> str:
    """Return the signature Kie sends for this task id and timestamp."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_callback_signature(key: str, task_id: str, timestamp: str | None,
                              signature: str | None, now: float,
                              tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """Return whether signature is Kie's for task_id at timestamp, within tolerance_s of now."""
    if not key or not task_id or not timestamp or not signature:
        return False
    stamp = timestamp.strip()
    if not stamp.isdigit() or len(stamp) > MAX_TIMESTAMP_DIGITS:
        return False
    if abs(now - int(stamp)) > tolerance_s:
        return False
    expected = sign_callback(key, task_id, stamp).encode()
    return hmac.compare_digest(expected, signature.strip().encode())


def task_id_of(body: Any) -> str | None:
    """Return the task id of a callback body: data.taskId, else data.task_id, else top level."""
    if not isinstance(body, Mapping):
        return None
    data = body.get("data")
    for holder in (data, body):
        if isinstance(holder, Mapping):
            for key in ("taskId", "task_id"):
                value = holder.get(key)
                if isinstance(value, str) and value:
                    return value
    return None
