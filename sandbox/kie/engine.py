"""Task life: accepted tasks move waiting -> queuing -> generating -> success | fail on timers.

Design: no sleeps in the request path. `create` stores the task and arms three
`loop.call_later` timers at 10 %, 20 % and 100 % of the task's duration (the config's
`task_duration_s` or a `task` fault rule's `duration_ms`); each timer is one O(1) state
change. When a task enters a state its family's callbacks for that state (market: only the
terminal one; Suno: text, first, complete) go to the callback sender. At the end the task
fails when its plan says so (fault rule countdown or seeded fail rate: failCode/failMsg set,
credits refunded when `refund_failed`), else its result files are made and stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.kie.accounts import Account, Accounts
from sandbox.kie.callbacks import CallbackSender, Delivery
from sandbox.kie.config import KieSandboxConfig
from sandbox.kie.families.base import Family
from sandbox.kie.faults import KieFaults
from sandbox.kie.files import RESULT_FOLDER, FileStore, StoredFile
from sandbox.kie.results import cover_image, result_media
from sandbox.kie.tasks import MediaKind, Task, TaskSpec, TaskState, now_ms

QUEUING_AT: float = 0.1  # share of the duration spent waiting
GENERATING_AT: float = 0.2  # ... and waiting + queuing
log = logging.getLogger(__name__)
STATE_ORDER = (TaskState.WAITING, TaskState.QUEUING, TaskState.GENERATING, TaskState.SUCCESS)


@dataclass(slots=True)
class EngineStats:
    """Count tasks since start or reset."""

    created: int = 0
    succeeded: int = 0
    failed: int = 0


class Engine:
    """Create tasks and drive them to their end."""

    def __init__(
        self,
        config: KieSandboxConfig,
        accounts: Accounts,
        faults: KieFaults,
        files: FileStore,
        callbacks: CallbackSender,
        notify: Callable[[], None],
    ) -> None:
        """Wire the engine to the sandbox's parts."""
        self._config = config
        self._accounts = accounts
        self._faults = faults
        self._files = files
        self._callbacks = callbacks
        self._notify = notify
        self.tasks: dict[str, Task] = {}
        self.stats = EngineStats()

    @property
    def active(self) -> int:
        """Return how many tasks have not ended."""
        return self.stats.created - self.stats.succeeded - self.stats.failed

    def create(self, family: Family, spec: TaskSpec, account: Account, cost: float) -> Task:
        """Store an accepted task and arm its timers."""
        plan = self._faults.plan(self._config.task_duration_s, spec.model, family.name)
        self._accounts.accept(account, cost)
        task = Task(family.new_task_id(), family, spec, account.key, cost, plan=plan)
        self.tasks[task.task_id] = task
        self.stats.created += 1
        log.debug(
            "task_created",
            extra={"task_id": task.task_id, "model": spec.model, "duration_s": plan.duration_s},
        )
        if not (plan.callback is not None and plan.callback.early):
            loop = asyncio.get_running_loop()
            duration_s = plan.duration_s
            task.timers = [
                loop.call_later(duration_s * QUEUING_AT, self._enter, task, TaskState.QUEUING),
                loop.call_later(
                    duration_s * GENERATING_AT, self._enter, task, TaskState.GENERATING
                ),
                loop.call_later(duration_s, self.finish, task),
            ]
        self._notify()
        return task

    def _enter(self, task: Task, state: TaskState) -> None:
        """Move a running task forward to an intermediate state and send its callbacks."""
        if task.done or STATE_ORDER.index(state) <= STATE_ORDER.index(task.state):
            return
        task.state = state
        task.updated_ms = now_ms()
        self._send(task, state)

    def advance(self, task: Task) -> None:
        """Move a running task to its next state now (after generating: its end)."""
        following = STATE_ORDER.index(task.state) + 1
        if following < len(STATE_ORDER) - 1:
            self._enter(task, STATE_ORDER[following])
        else:
            self.finish(task)

    def finish(self, task: Task, *, fail: tuple[str, str] | None = None) -> None:
        """End a task as planned (or as `fail=(code, msg)` says) and send its callbacks."""
        if self._end(task, fail):
            self._send(task, task.state)

    async def finish_early(self, task: Task) -> None:
        """End a task now and deliver its callbacks before the caller answers createTask."""
        if not self._end(task, None):
            return
        deliveries = self._deliveries(task, task.state)
        await self._callbacks.deliver_now(deliveries)

    def _end(self, task: Task, fail: tuple[str, str] | None) -> bool:
        """Put a task in its terminal state (False when it already ended)."""
        if task.done:
            return False
        task.cancel_timers()
        plan = task.plan
        if fail is None and plan is not None and plan.fail:
            fail = (plan.fail_code, plan.fail_msg)
        task.completed_ms = task.updated_ms = now_ms()
        if fail is not None:
            task.state = TaskState.FAIL
            task.fail_code, task.fail_msg = fail
            self.stats.failed += 1
            if self._config.refund_failed:
                self._accounts.refund(task.api_key, task.credits)
        else:
            self._store_results(task)
            task.state = TaskState.SUCCESS
            self.stats.succeeded += 1
        log.debug(
            "task_finished",
            extra={"task_id": task.task_id, "state": str(task.state), "fail_code": task.fail_code},
        )
        self._notify()
        return True

    def _store_results(self, task: Task) -> None:
        """Make the task's result files (and covers) and remember their URLs."""
        spec = task.spec
        if spec.media is MediaKind.TEXT:
            return
        plan = task.plan
        result_rule = plan.result if plan is not None else None
        ttl_s = self._config.result_ttl_s
        if result_rule is not None and result_rule.ttl_ms is not None:
            ttl_s = result_rule.ttl_ms / 1000
        expires_at_s = time.monotonic() + ttl_s
        missing = result_rule is not None and result_rule.missing
        failing_reads = result_rule.failing_reads if result_rule is not None else 0
        index = self.stats.created
        for number in range(spec.results):
            data, mime, ext = result_media(
                self._config,
                spec.media,
                ratio=spec.ratio,
                image_format=spec.image_format,
                index=index + number,
                target_bytes=plan.result_bytes if plan is not None else None,
            )
            file = StoredFile(data, mime, f"{task.task_id}-{number}.{ext}", expires_at_s, missing,
                              failing_reads)
            task.result_urls.append(self._files.put_random(RESULT_FOLDER, file))
            if task.family.covers:
                data, mime, ext = cover_image(self._config, index + number)
                cover = StoredFile(data, mime, f"{task.task_id}-{number}-cover.{ext}", expires_at_s)
                task.cover_urls.append(self._files.put_random(RESULT_FOLDER, cover))

    def _deliveries(self, task: Task, state: TaskState) -> list[Delivery]:
        """Build the deliveries of the callbacks for `state` (none without callBackUrl)."""
        url = task.spec.callback_url
        bodies = task.family.callbacks(task, state)
        if url is None or not bodies:
            return []
        plan = task.plan
        rule = plan.callback if plan is not None else None
        return self._callbacks.deliveries(task.task_id, task.model, url, bodies, rule)

    def _send(self, task: Task, state: TaskState) -> None:
        """Send the callbacks for `state` in the background."""
        deliveries = self._deliveries(task, state)
        if deliveries:
            plan = task.plan
            self._callbacks.submit(deliveries, plan.callback if plan is not None else None)

    def expire_results(self, task: Task) -> int:
        """Make a task's result URLs expire now; return how many."""
        return sum(self._files.expire(url) for url in (*task.result_urls, *task.cover_urls))

    def stop(self) -> None:
        """Cancel every pending transition."""
        for task in self.tasks.values():
            task.cancel_timers()

    def reset(self) -> None:
        """Forget every task."""
        self.stop()
        self.tasks.clear()
        self.stats = EngineStats()
