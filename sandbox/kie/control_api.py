"""HTTP handlers of the test control API under /_sandbox/ (no key needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aiohttp import web

from sandbox.common.responses import ControlError, control_errors, dump, json_body, query_int
from sandbox.common.waiters import parse_bounds, wait_timeout_s
from sandbox.kie.faults import parse_rule
from sandbox.kie.tasks import Task, TaskState

if TYPE_CHECKING:
    from sandbox.kie.server import KieSandbox

CONTROL_PREFIX: Final[str] = "/_sandbox"
DEFAULT_LIST_LIMIT: Final[int] = 1_000
MAX_LIST_LIMIT: Final[int] = 100_000
WAIT_RESERVED_PARAMS: Final[frozenset[str]] = frozenset({"timeout"})


class ControlApi:
    """Serve stats, wait, config, reset, tasks, callbacks, requests, faults and credits."""

    def __init__(self, sandbox: KieSandbox) -> None:
        """Bind the handlers to one sandbox."""
        self._sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        """Return the route table of the control API."""
        p = CONTROL_PREFIX
        c = control_errors
        return [
            web.get(f"{p}/health", c(self.health)),
            web.get(f"{p}/stats", c(self.stats)),
            web.get(f"{p}/wait", c(self.wait)),
            web.get(f"{p}/config", c(self.get_config)),
            web.post(f"{p}/config", c(self.set_config)),
            web.post(f"{p}/reset", c(self.reset)),
            web.get(f"{p}/tasks", c(self.tasks)),
            web.get(f"{p}/tasks/{{task_id}}", c(self.task)),
            web.post(f"{p}/tasks/{{task_id}}/advance", c(self.advance)),
            web.post(f"{p}/tasks/{{task_id}}/complete", c(self.complete)),
            web.post(f"{p}/tasks/{{task_id}}/fail", c(self.fail)),
            web.post(f"{p}/tasks/{{task_id}}/expire", c(self.expire)),
            web.get(f"{p}/callbacks", c(self.callbacks)),
            web.get(f"{p}/requests", c(self.requests)),
            web.get(f"{p}/faults", c(self.get_faults)),
            web.post(f"{p}/faults", c(self.set_faults)),
            web.delete(f"{p}/faults", c(self.clear_faults)),
            web.post(f"{p}/credits", c(self.set_credits)),
        ]

    def _limit(self, request: web.Request) -> int:
        """Read `?limit=` (default 1,000, at most 100,000)."""
        limit = query_int(request, "limit", DEFAULT_LIST_LIMIT) or DEFAULT_LIST_LIMIT
        return min(max(limit, 1), MAX_LIST_LIMIT)

    def _task(self, request: web.Request) -> Task:
        """Return the task named in the path (404 otherwise)."""
        task = self._sandbox.engine.tasks.get(request.match_info["task_id"])
        if task is None:
            raise ControlError(404, "task not found")
        return task

    async def health(self, request: web.Request) -> web.Response:
        """Answer liveness probes."""
        return dump({"ok": True})

    async def stats(self, request: web.Request) -> web.Response:
        """Return every counter and the answers by body code."""
        sandbox = self._sandbox
        answers = {str(code): count for code, count in sorted(sandbox.answers.items())}
        return dump({"ok": True, **sandbox.counters(), "answers": answers})

    async def wait(self, request: web.Request) -> web.Response:
        """Long-poll until every `<counter>_at_least/_at_most` holds: 200, or 408 on timeout."""
        sandbox = self._sandbox
        bounds = parse_bounds(request.query, sandbox.counters(), WAIT_RESERVED_PARAMS)
        if not bounds:
            raise ControlError(400, "give at least one <counter>_at_least/_at_most condition")

        def holds() -> bool:
            counters = sandbox.counters()
            return all(bound.holds(counters) for bound in bounds)

        satisfied = await sandbox.waiters.wait(holds, wait_timeout_s(request))
        payload: dict[str, object] = {"ok": satisfied, **sandbox.counters()}
        if not satisfied:
            payload["error"] = "timeout: condition not met"
        return dump(payload, 200 if satisfied else 408)

    async def get_config(self, request: web.Request) -> web.Response:
        """Return the current configuration."""
        return dump(self._sandbox.config.to_dict())

    async def set_config(self, request: web.Request) -> web.Response:
        """Change configuration keys and return the whole configuration."""
        payload = await json_body(request)
        if not isinstance(payload, dict):
            raise ControlError(400, "send a JSON object of config keys")
        self._sandbox.update_config(payload)
        return dump(self._sandbox.config.to_dict())

    async def reset(self, request: web.Request) -> web.Response:
        """Forget tasks, files, logs, faults and counters; `{"config": true}` also the config."""
        payload = await json_body(request) or {}
        if not isinstance(payload, dict):
            raise ControlError(400, "send a JSON object")
        self._sandbox.reset(config=bool(payload.get("config", False)))
        return dump({"ok": True})

    async def tasks(self, request: web.Request) -> web.Response:
        """List tasks (oldest first), optionally of one `model` or `state`."""
        model = request.query.get("model")
        state = request.query.get("state")
        if state is not None and state not in set(TaskState):
            raise ControlError(400, f"state must be one of {[str(s) for s in TaskState]}")
        limit = self._limit(request)
        found = []
        for task in self._sandbox.engine.tasks.values():
            if (model is None or task.model == model) and (state is None or task.state == state):
                found.append(task.summary())
                if len(found) >= limit:
                    break
        return dump({"ok": True, "tasks": found})

    async def task(self, request: web.Request) -> web.Response:
        """Return one task and its status data as its family's status endpoint shows it."""
        task = self._task(request)
        return dump({"ok": True, "task": task.summary(), "status": task.family.status(task)})

    async def advance(self, request: web.Request) -> web.Response:
        """Move a running task to its next state now."""
        task = self._task(request)
        if task.done:
            raise ControlError(409, "task already ended")
        self._sandbox.engine.advance(task)
        return dump({"ok": True, "task": task.summary()})

    async def complete(self, request: web.Request) -> web.Response:
        """End a running task with success now."""
        task = self._task(request)
        if task.done:
            raise ControlError(409, "task already ended")
        if task.plan is not None:
            task.plan.fail = False
        self._sandbox.engine.finish(task)
        return dump({"ok": True, "task": task.summary()})

    async def fail(self, request: web.Request) -> web.Response:
        """End a running task with `fail` now (`fail_code`, `fail_msg` in the body)."""
        task = self._task(request)
        if task.done:
            raise ControlError(409, "task already ended")
        payload = await json_body(request) or {}
        code = str(payload.get("fail_code", "500"))
        msg = str(payload.get("fail_msg", "Internal Error, Please try again later."))
        self._sandbox.engine.finish(task, fail=(code, msg))
        return dump({"ok": True, "task": task.summary()})

    async def expire(self, request: web.Request) -> web.Response:
        """Make a task's result URLs expire now (they answer 404)."""
        task = self._task(request)
        return dump({"ok": True, "expired": self._sandbox.engine.expire_results(task)})

    async def callbacks(self, request: web.Request) -> web.Response:
        """List callback attempts after `after_seq`, optionally of one `task_id`."""
        after_seq = query_int(request, "after_seq", 0) or 0
        task_id = request.query.get("task_id")
        limit = self._limit(request)
        items = [
            entry
            for entry in self._sandbox.callbacks.log
            if entry["seq"] > after_seq and (task_id is None or entry["task_id"] == task_id)
        ][:limit]
        return dump({"ok": True, "items": items, "last_seq": self._sandbox.callbacks.last_seq})

    async def requests(self, request: web.Request) -> web.Response:
        """List received requests (`after_seq`, `path_prefix`, `contains`, `limit`)."""
        log = self._sandbox.requests
        items = log.matching(
            after_seq=query_int(request, "after_seq", 0) or 0,
            path_prefix=request.query.get("path_prefix"),
            contains=request.query.get("contains"),
            limit=self._limit(request),
        )
        return dump({"ok": True, "items": items, "last_seq": log.last_seq})

    async def get_faults(self, request: web.Request) -> web.Response:
        """List the active fault rules."""
        return dump({"ok": True, "faults": self._sandbox.faults.rules()})

    async def set_faults(self, request: web.Request) -> web.Response:
        """Add or replace one fault rule or a list of them (all validated first)."""
        payload = await json_body(request)
        rules = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(rule, dict) for rule in rules):
            raise ControlError(400, "send a fault object or a list of them")
        for rule in rules:
            parse_rule(rule)
        for rule in rules:
            self._sandbox.faults.add(rule)
        return dump({"ok": True, "faults": self._sandbox.faults.rules()})

    async def clear_faults(self, request: web.Request) -> web.Response:
        """Remove every fault rule."""
        self._sandbox.faults.clear()
        return dump({"ok": True, "faults": []})

    async def set_credits(self, request: web.Request) -> web.Response:
        """Set the balance of one key (`key`, default the first) to `credits`."""
        payload = await json_body(request)
        if not isinstance(payload, dict):
            raise ControlError(400, 'send {"credits": N}')
        credits = payload.get("credits")
        if isinstance(credits, bool) or not isinstance(credits, int | float) or credits < 0:
            raise ControlError(400, "credits must be a number >= 0")
        try:
            account = self._sandbox.accounts.get(payload.get("key"))
        except KeyError as exc:
            raise ControlError(404, "unknown key") from exc
        account.credits = float(credits)
        return dump({"ok": True, "credits": account.credits})
