"""Callback delivery: POST each finished task's bodies to its `callBackUrl`.

Per task the bodies (Suno sends several) go in order, one at a time. An attempt fails on a
non-2xx answer, a connection error or `callback_timeout_s` (15 s, like Kie); a failed body is
retried after `callback_retry_delay_s`, at most `callback_retries` times (Kie: 3), then given
up and the next body follows. Tasks are delivered concurrently (`callback_concurrency`).

Signing (when `webhook_hmac_key` is set, as Kie does once an account key exists):
    X-Webhook-Timestamp = Unix seconds of the attempt
    X-Webhook-Signature = base64(HMAC-SHA256(key, f"{taskId}.{timestamp}"))
with taskId read from the callback body (`data.taskId` or `data.task_id`).

Faults (a `CallbackRule`): lost (nothing sent), duplicate (extra copies), delay_ms, out_of_order
(held back until the next task's first callback went out, or HOLD_MAX_S; several bodies of a
task in reverse), early (the create handler awaits `deliver_now` before answering), unsigned,
bad_signature.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import orjson

from sandbox.kie.config import KieSandboxConfig
from sandbox.kie.faults import CallbackRule

TIMESTAMP_HEADER: Final[str] = "X-Webhook-Timestamp"
SIGNATURE_HEADER: Final[str] = "X-Webhook-Signature"
USER_AGENT: Final[str] = "KieSandbox/1.0 (callback)"
HOLD_MAX_S: Final[float] = 1.0
MAX_LOGGED_REPLY_BYTES: Final[int] = 1_024

log = logging.getLogger(__name__)


def signature(key: str, task_id: str, timestamp: str) -> str:
    """Return Kie's webhook signature of `taskId.timestamp`."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(slots=True, eq=False)
class Delivery:
    """The callbacks of one task (one copy), delivered head first."""

    task_id: str
    model: str
    url: str
    bodies: deque[dict[str, Any]]
    unsigned: bool = False
    bad_signature: bool = False
    attempt: int = 0
    followers: list[Delivery] = field(default_factory=list)


@dataclass(slots=True)
class CallbackStats:
    """Count deliveries since start or reset."""

    attempts: int = 0
    ok: int = 0
    failed: int = 0
    given_up: int = 0
    lost: int = 0
    pending: int = 0


class CallbackSender:
    """Queue, send, retry and log callbacks."""

    def __init__(self, config: KieSandboxConfig, notify: Any) -> None:
        """Prepare (not start) delivery; `notify()` runs after every state change."""
        self._config = config
        self._notify = notify
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._held: list[Delivery] = []
        self._session: aiohttp.ClientSession | None = None
        self.stats = CallbackStats()
        self.log: deque[dict[str, Any]] = deque(maxlen=config.max_callback_log_items)
        self.last_seq = 0

    def start(self) -> None:
        """Open the HTTP session and start the workers."""
        concurrency = self._config.callback_concurrency
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
        self._session = aiohttp.ClientSession(connector=connector)
        self._workers = [
            asyncio.create_task(self._worker(), name=f"kie-sandbox-callback-{index}")
            for index in range(concurrency)
        ]

    async def stop(self) -> None:
        """Cancel timers and workers, close the session."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._held.clear()
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset(self) -> None:
        """Forget counters and the log (deliveries in flight go on)."""
        self.stats = CallbackStats(pending=self.stats.pending)
        self.log = deque(maxlen=self._config.max_callback_log_items)

    def resize_log(self, max_items: int) -> None:
        """Change the cap of the attempt log, keeping the newest entries."""
        self.log = deque(self.log, maxlen=max_items)

    def _later(self, delay_s: float, callback: Any, *args: Any) -> None:
        """Run `callback(*args)` after `delay_s`, remembering the timer for stop()."""
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def fire() -> None:
            self._timers.discard(timer)
            callback(*args)

        timer = loop.call_later(delay_s, fire)
        self._timers.add(timer)

    def deliveries(
        self,
        task_id: str,
        model: str,
        url: str,
        bodies: list[dict[str, Any]],
        rule: CallbackRule | None,
    ) -> list[Delivery]:
        """Build the copies of one task's callbacks; a `lost` rule gives none."""
        if rule is not None and rule.lost:
            self.stats.lost += len(bodies)
            self._notify()
            return []
        ordered = list(reversed(bodies)) if rule is not None and rule.out_of_order else bodies
        copies = 1 + (rule.duplicate if rule is not None else 0)
        self.stats.pending += copies * len(bodies)
        return [
            Delivery(
                task_id,
                model,
                url,
                deque(ordered),
                unsigned=rule is not None and rule.unsigned,
                bad_signature=rule is not None and rule.bad_signature,
            )
            for _ in range(copies)
        ]

    def submit(self, deliveries: list[Delivery], rule: CallbackRule | None) -> None:
        """Send deliveries in the background, honouring delay and out-of-order faults."""
        for delivery in deliveries:
            if rule is not None and rule.delay_ms:
                self._later(rule.delay_ms / 1000, self._enqueue, delivery, rule)
            else:
                self._enqueue(delivery, rule)

    def _enqueue(self, delivery: Delivery, rule: CallbackRule | None) -> None:
        """Queue a delivery; an out-of-order one waits behind the next task's callback."""
        if rule is not None and rule.out_of_order:
            self._held.append(delivery)
            self._later(HOLD_MAX_S, self._release_held, delivery)
            return
        if self._held:
            delivery.followers.extend(self._held)
            self._held.clear()
        self._queue.put_nowait(delivery)

    def _release_held(self, delivery: Delivery) -> None:
        """Send a held delivery that no later callback overtook in time."""
        if delivery in self._held:
            self._held.remove(delivery)
            self._queue.put_nowait(delivery)

    async def deliver_now(self, deliveries: list[Delivery]) -> None:
        """Make every delivery's first attempt now (retries go to the background)."""
        for delivery in deliveries:
            await self._attempt(delivery)

    async def _worker(self) -> None:
        """Deliver queued callbacks forever."""
        while True:
            delivery = await self._queue.get()
            try:
                await self._attempt(delivery)
            except Exception:
                log.exception("callback_delivery_crashed", extra={"task_id": delivery.task_id})

    async def _attempt(self, delivery: Delivery) -> None:
        """Send the head body once; then continue, retry later or give up."""
        body = delivery.bodies[0]
        delivery.attempt += 1
        status = await self._post(delivery, body)
        followers, delivery.followers = delivery.followers, []
        for follower in followers:
            self._queue.put_nowait(follower)
        ok = status is not None and 200 <= status < 300
        self.stats.attempts += 1
        if ok:
            self.stats.ok += 1
        else:
            self.stats.failed += 1
        if ok or delivery.attempt > self._config.callback_retries:
            if not ok:
                self.stats.given_up += 1
                log.info(
                    "callback_given_up",
                    extra={"task_id": delivery.task_id, "attempts": delivery.attempt},
                )
            self.stats.pending -= 1
            delivery.bodies.popleft()
            delivery.attempt = 0
            if delivery.bodies:
                self._queue.put_nowait(delivery)
        else:
            self._later(self._config.callback_retry_delay_s, self._queue.put_nowait, delivery)
        self._notify()

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        """Return the request headers, signed when a key is configured."""
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        key = self._config.webhook_hmac_key
        if key and not delivery.unsigned:
            timestamp = str(int(time.time()))
            signed = signature(key, delivery.task_id, timestamp)
            if delivery.bad_signature:
                signed = signature(key + "-wrong", delivery.task_id, timestamp)
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signed
        return headers

    async def _post(self, delivery: Delivery, body: dict[str, Any]) -> int | None:
        """POST one body, log the attempt and return the HTTP status (None: no answer)."""
        headers = self._headers(delivery)
        status: int | None = None
        error: str | None = None
        reply = ""
        session = self._session
        try:
            if session is None:
                raise RuntimeError("the callback sender is stopped")
            async with session.post(
                delivery.url,
                data=orjson.dumps(body),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._config.callback_timeout_s),
                allow_redirects=False,
            ) as resp:
                status = resp.status
                reply = (await resp.read())[:MAX_LOGGED_REPLY_BYTES].decode("utf-8", "replace")
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except RuntimeError as exc:
            error = str(exc)
        self.last_seq += 1
        self.log.append(
            {
                "seq": self.last_seq,
                "at_ms": int(time.time() * 1000),
                "task_id": delivery.task_id,
                "model": delivery.model,
                "url": delivery.url,
                "attempt": delivery.attempt,
                "status": status,
                "error": error,
                "headers": headers,
                "body": body,
                "reply": reply,
            }
        )
        return status
