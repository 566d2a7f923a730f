"""The generation engine in one process against both sandboxes, for e2e tests and bench/.

    GenerationStack(database_url)   a migrated database
      Telegram sandbox   auto-created chats, no rate limits (delivery is what is measured)
      Kie sandbox        its config (task time, faults, HMAC key) as given
      callback route     CallbackIngress on a loopback port = WEBHOOK_BASE_URL
      leadership         won through the real Elector and held (renewed) while running
      loops              the engine's leader services (submitter, applier, poller, delivery)

`request()` places a generation as a handler does (`Generations.request`, unthrottled);
the rest happens through HTTP and the database only, exactly as in production, through the
pool an instance has (`supervisor.db.create_pool`, DB_MAXCONN as deployed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from aiohttp import web
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from config import Settings, load_settings
from sandbox.harness.env import BOT_TOKEN, DEPLOYED_DB_MAXCONN, KIE_KEY, make_env
from sandbox.harness.postgres import free_port
from sandbox.kie import KieSandbox, KieSandboxConfig
from sandbox.telegram import SandboxConfig, TelegramSandbox
from services.billing.ledger import EntryKind, Wallet, apply_entry, read_wallet
from services.catalog import Catalog, get_catalog
from services.catalog.loader import InputField, Model
from services.generation import Job, JobLimits, RequestOutcome, audit
from services.generation.engine import Engine, Timings, build_engine
from services.generation.service import Generations, RateLimited, RequestThrottle
from services.generation.submitter import submit_bucket
from services.kie import KieClient, TokenBucket
from services.storefront import Storefront
from services.telegram import texts
from services.telegram.bot import create_bot
from services.users import ensure_user
from supervisor import db
from supervisor.election import Elector, Leadership
from supervisor.instance import freeze_startup_heap
from supervisor.runtime_state import RuntimeState
from supervisor.sqlstore import QueryStore
from supervisor.stores import TransitionReason

QUERIES = QueryStore(Path(__file__).with_name("sql") / "generation.sql")
MARKUP = Decimal("2.0")
SAMPLE_PROMPT = "a red fox in the snow"
SAMPLE_URLS = {"image_url": "https://cdn.example.test/in.png",
               "video_url": "https://cdn.example.test/in.mp4",
               "audio_url": "https://cdn.example.test/in.mp3"}
# Kie's own limit is 20 per 10 s; a bucket this large never waits (rate limit "off").
UNLIMITED_TOKENS = 10**9
# Requests per user per window the harness allows: never refused (see `request`).
UNTHROTTLED = 10**9


@dataclass(slots=True)
class StackOptions:
    """How the stack's parts are set up."""

    kie: KieSandboxConfig = field(default_factory=KieSandboxConfig)
    hmac_key: str | None = None
    rate_limited: bool = True  # the submitter's 20-per-10-s bucket on (else unlimited)
    limits: JobLimits = field(default_factory=lambda: JobLimits(max_active_jobs=1_000,
                                                                free_daily_quota=1_000))
    env: Mapping[str, str] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    # Sandboxes already running elsewhere (benchmarks run them as processes, so the engine
    # has this process to itself); None: run them in this process.
    telegram_url: str | None = None
    kie_url: str | None = None


def sample_value(f: InputField, kind: str) -> object:
    """Return a first valid value for a field of this kind."""
    if kind == "array":
        return [sample_value(f, f.item_type or "string")]
    if kind == "enum":
        return f.values[0]
    if kind in SAMPLE_URLS:
        return SAMPLE_URLS[kind]
    if kind == "bool":
        return False
    if kind in ("int", "float"):
        low = f.min if f.min is not None else 1
        return int(low) if kind == "int" else float(low)
    return SAMPLE_PROMPT[: f.max_length or None].ljust(f.min_length or 0, "x")


def sample_params(model: Model) -> dict[str, object]:
    """Return valid params of a model built from the catalog: its defaults plus a first valid
    value for every required field without one."""
    return model.validate_params({f.name: sample_value(f, f.type) for f in model.inputs
                                  if f.required and f.default is None})


class GenerationStack:
    """Both sandboxes, the callback route and the engine's loops, leading one database."""

    def __init__(self, database_url: str, options: StackOptions | None = None) -> None:
        self.database_url = database_url
        self.options = options or StackOptions()
        self.catalog: Catalog = get_catalog()
        self.telegram: TelegramSandbox | None = None
        self.kie: KieSandbox | None = None
        if self.options.telegram_url is None:
            self.telegram = TelegramSandbox([BOT_TOKEN], config=SandboxConfig(
                per_chat_rate_per_s=0, global_rate_per_s=0, auto_create_chats=True))
        if self.options.kie_url is None:
            if self.options.hmac_key:
                self.options.kie.webhook_hmac_key = self.options.hmac_key
            self.kie = KieSandbox([KIE_KEY], config=self.options.kie, catalog=self.catalog)
        self.state = RuntimeState(instance_id="stack", bot_mode="polling", version="stack")
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.settings: Settings | None = None
        self.pool: AsyncConnectionPool | None = None
        self.engine: Engine | None = None
        self.leadership: Leadership | None = None
        self.generations: Generations | None = None

    async def __aenter__(self) -> GenerationStack:
        await self._stack.__aenter__()
        try:
            await self._start()
        except BaseException:
            await self._stack.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    @property
    def telegram_url(self) -> str:
        """Return the Telegram sandbox's base URL."""
        return self.telegram.base_url if self.telegram else str(self.options.telegram_url)

    @property
    def kie_url(self) -> str:
        """Return the Kie sandbox's base URL."""
        return self.kie.base_url if self.kie else str(self.options.kie_url)

    async def _start(self) -> None:
        if self.telegram is not None:
            await self._stack.enter_async_context(self.telegram)
        if self.kie is not None:
            await self.kie.start()
            self._stack.push_async_callback(self.kie.stop)
        port = free_port()
        env = make_env(self.database_url, TELEGRAM_API_BASE=self.telegram_url,
                       KIE_BASE_URL=self.kie_url, KIE_UPLOAD_BASE_URL=self.kie_url,
                       WEBHOOK_BASE_URL=f"http://127.0.0.1:{port}",
                       DB_MAXCONN=str(DEPLOYED_DB_MAXCONN),
                       **({"KIE_WEBHOOK_HMAC_KEY": self.options.hmac_key}
                          if self.options.hmac_key else {}), **self.options.env)
        settings = self.settings = load_settings(env)
        pool = self.pool = db.create_pool(settings)
        await pool.open()
        self._stack.push_async_callback(pool.close)
        elector = Elector(settings, self.state, pool)
        leadership = await elector.campaign(self._stop)
        assert leadership is not None
        self.leadership = leadership
        self._spawn(elector.hold(leadership, self._stop), "stack-hold")
        self._stack.push_async_callback(elector.release, leadership,
                                        reason=TransitionReason.STOPPING, resign=True)
        bot = create_bot(settings, leading=leadership.trusted)
        self._stack.push_async_callback(bot.session.close)
        kie = KieClient.from_settings(settings)
        kie.bucket = (submit_bucket() if self.options.rate_limited
                      else TokenBucket(capacity=UNLIMITED_TOKENS))
        self._stack.push_async_callback(kie.close)

        async def listen_connect() -> psycopg.AsyncConnection:
            return await db.connect(settings, purpose="listen")

        engine = self.engine = build_engine(settings, pool, self.state, bot=bot,
                                            catalog=self.catalog, listen_connect=listen_connect,
                                            kie=kie, timings=self.options.timings)
        # The chat's per-user request throttle is not what tests and benchmarks measure (a
        # benchmark's user confirms 5 at once): off; the unit of work is the handlers' own.
        self.generations = Generations(
            pool, leadership=lambda: leadership, limits=self.options.limits,
            storefront=Storefront(pool, self.catalog, markup=MARKUP,
                                  leadership=lambda: leadership),
            throttle=RequestThrottle(limit=UNTHROTTLED), on_requested=engine.requested)
        app = web.Application()
        for install in engine.routes:
            install(app)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._stack.push_async_callback(self._stop_loops)
        for service in engine.leader_only:
            self._spawn(service.run(leadership), f"stack-{service.name}")
        # As an instance's start-up does: its dispatcher reads the Fluent texts (a blocking
        # parse, not the first delivery's), then the long-lived heap is frozen.
        texts.core()
        freeze_startup_heap()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _stop_loops(self) -> None:
        """Drain the loops (they finish in-flight work), then stop holding the lease."""
        assert self.leadership is not None
        self.leadership.draining.set()
        self._stop.set()
        done, pending = await asyncio.wait(self._tasks, timeout=10.0)
        for task in pending:
            task.cancel()
        await asyncio.wait(self._tasks)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    # ---- what a test or a benchmark does ----

    async def fund(self, user_id: int, balance_kop: int, *, language: str = "en") -> None:
        """Register a user with a wallet topped up by balance_kop."""
        assert self.pool is not None
        async with self.pool.connection() as conn, conn.transaction():
            await ensure_user(conn, user_id=user_id, username=None, first_name="U",
                              language_code=language)
            if balance_kop:
                await apply_entry(conn, user_id=user_id, kind=EntryKind.TOPUP,
                                  balance_delta_kop=balance_kop, hold_delta_kop=0,
                                  idempotency_key=f"stack-seed:{user_id}", payment_id=user_id)

    async def request(self, user_id: int, model_id: str, params: Mapping[str, object], *,
                      key: str) -> RequestOutcome:
        """Ask for a generation as a handler does (`Generations.request`: one fenced,
        pipelined unit of work under the press's idempotency key; then the submitter wakes)."""
        assert self.generations is not None
        outcome = await self.generations.request(
            user_id=user_id, chat_id=user_id, model_id=model_id, params=params,
            idempotency_key=key)
        assert not isinstance(outcome, RateLimited), "the harness does not throttle"
        return outcome

    async def jobs(self, job_ids: Sequence[int]) -> dict[int, Job]:
        """Return the jobs as committed, by id."""
        assert self.pool is not None
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(QUERIES["jobs_by_id"], {"job_ids": list(job_ids)})
            return {row["id"]: Job.from_row(row) for row in await cur.fetchall()}

    async def all_delivered(self, job_ids: Sequence[int]) -> bool:
        """Tell whether every job's delivery is closed (delivered or undeliverable)."""
        assert self.pool is not None
        async with self.pool.connection() as conn:
            cur = await conn.execute(QUERIES["open_deliveries"], {"job_ids": list(job_ids)})
            row = await cur.fetchone()
        return row is not None and row[0] == 0

    async def wallet(self, user_id: int) -> Wallet:
        """Return a user's wallet as committed."""
        assert self.pool is not None
        async with self.pool.connection() as conn:
            wallet = await read_wallet(conn, user_id)
        assert wallet is not None, f"user {user_id} has no wallet"
        return wallet

    async def violations(self) -> list[str]:
        """Return the broken invariants (empty: all hold)."""
        assert self.pool is not None
        async with self.pool.connection() as conn:
            return [f"{v.rule}: user {v.user_id} job {v.job_id}: {v.detail}"
                    for v in await audit(conn)]
