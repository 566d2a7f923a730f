"""A whole deployment on one machine for e2e tests: Telegram sandbox, (balancer,) N instances.

Users are simulated through the sandbox's control API; what the bot answered is read back
from the sandbox's outbox; what was stored and handled is read from the database.
"""

from __future__ import annotations

import re
import tempfile
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

from sandbox.harness.cluster import InstanceCluster, ServerProcess, get_json
from tests.helpers import BOT_TOKEN, make_env

WEBHOOK_SECRET = "e2e-webhook-secret"
# The fallback handler quotes what it did not understand: “/c12-m3” (a command: plain text
# at the menu is a prompt for the generation form).
QUOTED_RE = re.compile(r"\u201c/(c(\d+)-m(\d+))\u201d")
OUTBOX_PAGE = 1000
DONE_COUNT_SQL = b"SELECT count(*) FROM telegram_updates WHERE status = 'done'"
NOT_DONE_SQL = b"SELECT update_id, status, last_error FROM telegram_updates WHERE status <> 'done'"


def post_json(url: str, body: object, timeout_s: float = 30.0) -> Any:
    """POST JSON and return the decoded answer."""
    request = urllib.request.Request(url, data=orjson.dumps(body), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return orjson.loads(response.read())


@dataclass
class Reply:
    """One bot message in the sandbox outbox that quotes a user message."""

    seq: int
    chat: int
    message: int


@dataclass
class Deployment:
    """Sandbox + instances (+ balancer in webhook mode) against one database."""

    database_url: str
    mode: str
    instances: int = 3
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logs_dir = Path(tempfile.mkdtemp(prefix="kiebot-e2e-"))
        self.sandbox = ServerProcess("sandbox.telegram", [
            "--port", "0", "--token", BOT_TOKEN, "--per-chat-rate", "0", "--global-rate", "0",
            "--webhook-retry-initial", "0.2", "--webhook-retry-max", "1",
            "--webhook-timeout", "5"], self.logs_dir / "sandbox.log")
        self.balancer: ServerProcess | None = None
        self.cluster = InstanceCluster(self.instances, command=["-m", "supervisor", "run"],
                                       env={}, logs_dir=self.logs_dir)

    def start(self) -> None:
        """Start the sandbox, the balancer (webhook mode) and every instance."""
        sandbox_url = self.sandbox.start()
        public_url = "http://127.0.0.1:1"  # unused in polling mode
        if self.mode == "webhook":
            backends = [arg for url in self.cluster.urls for arg in ("--backend", url)]
            self.balancer = ServerProcess("sandbox.harness.balancer", ["--port", "0", *backends],
                                          self.logs_dir / "balancer.log")
            public_url = self.balancer.start()
        self.cluster.env = make_env(
            self.database_url, BOT_MODE=self.mode, TELEGRAM_API_BASE=sandbox_url,
            WEBHOOK_BASE_URL=public_url, WEBHOOK_SECRET_TOKEN=WEBHOOK_SECRET,
            SHUTDOWN_GRACE="10", LEADER_STOP_GRACE="3", DB_MAXCONN="10", **self.env)
        self.cluster.start()

    def stop(self) -> None:
        """Stop everything that start() started."""
        self.cluster.stop()
        for server in (self.balancer, self.sandbox):
            if server is not None:
                server.stop()

    # ---- the sandbox ----

    def control(self, path: str) -> str:
        return f"{self.sandbox.base_url}/_sandbox/{path}"

    def inject_messages(self, items: list[tuple[int, int]]) -> None:
        """Inject one unknown command "/c{chat}-m{n}" per (chat, n)."""
        post_json(self.control("inject"), [
            {"kind": "message", "chat_id": chat, "user_id": chat, "text": f"/c{chat}-m{n}",
             "language_code": "en", "first_name": f"U{chat}"} for chat, n in items])

    def stats(self) -> dict[str, Any]:
        """Return the sandbox counters."""
        doc = get_json(self.control("stats"), timeout_s=10)
        assert doc is not None
        return doc

    def wait_outbox(self, at_least: int, timeout_s: float) -> bool:
        """Wait until the bot sent at least this many messages; return whether it did."""
        doc = get_json(self.control(f"wait?outbox_at_least={at_least}&timeout={timeout_s}"),
                       timeout_s=timeout_s + 5)
        return bool(doc) and int(doc.get("outbox", 0)) >= at_least  # type: ignore[call-overload]

    def replies(self) -> list[Reply]:
        """Return every quoting reply in the outbox, in send order."""
        found: list[Reply] = []
        after = 0
        while True:
            doc = get_json(self.control(f"outbox?after_seq={after}&limit={OUTBOX_PAGE}"),
                           timeout_s=10)
            assert doc is not None
            items = doc["items"]
            for item in items:  # type: ignore[union-attr]
                match = QUOTED_RE.search(item.get("text") or "")
                if match:
                    found.append(Reply(item["seq"], int(match.group(2)), int(match.group(3))))
            if len(items) < OUTBOX_PAGE:  # type: ignore[arg-type]
                return found
            after = items[-1]["seq"]  # type: ignore[index]

    # ---- the database ----

    def done_count(self) -> int:
        """Count updates handled to completion."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(DONE_COUNT_SQL).fetchone()
        return int(row[0]) if row else 0

    def not_done(self) -> list[tuple[Any, ...]]:
        """Return updates that are not done (for failure messages)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(NOT_DONE_SQL).fetchall()


@dataclass
class Verdict:
    """What the replies say about loss, order and duplicates."""

    lost: list[tuple[int, int]]
    out_of_order: list[int]
    duplicates: list[tuple[int, int, int, int]]  # chat, message, first seq, second seq


def judge(replies: list[Reply], chats: int, per_chat: int) -> Verdict:
    """Check every message got a reply, in order per chat, and list the duplicates."""
    by_chat: dict[int, list[Reply]] = defaultdict(list)
    for reply in replies:
        by_chat[reply.chat].append(reply)
    lost: list[tuple[int, int]] = []
    out_of_order: list[int] = []
    duplicates: list[tuple[int, int, int, int]] = []
    for chat in range(1, chats + 1):
        seen: dict[int, int] = {}
        sequence: list[int] = []
        for reply in by_chat.get(chat, []):
            if reply.message in seen:
                duplicates.append((chat, reply.message, seen[reply.message], reply.seq))
                continue
            seen[reply.message] = reply.seq
            sequence.append(reply.message)
        lost.extend((chat, n) for n in range(per_chat) if n not in seen)
        if sequence != sorted(sequence):
            out_of_order.append(chat)
    return Verdict(lost, out_of_order, duplicates)
