"""HTTP handlers of Kie's API host: create and status of every family, credit, download-url.

Every handler authenticates first (401), then applies `request` fault rules, then does its
work; a `KieError` becomes Kie's `{code, msg, data: null}` body (HTTP 200, or the code as
HTTP status when `http_status_errors` is on).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sandbox.kie.accounts import as_number
from sandbox.kie.envelope import (
    MSG_TASK_ID_REQUIRED,
    MSG_TASK_NOT_FOUND,
    KieError,
    api_response,
    envelope,
    error_body,
)
from sandbox.kie.families.base import Family
from sandbox.kie.faults import RequestRule
from sandbox.kie.files import LINK_FOLDER, StoredFile
from sandbox.kie.requestlog import ENTRY_KEY

if TYPE_CHECKING:
    from sandbox.kie.server import KieSandbox

Handler = Callable[[web.Request], Awaitable[dict[str, Any]]]


async def read_object(request: web.Request) -> dict[str, Any]:
    """Decode a JSON object body (400 otherwise)."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise KieError(400, f"Invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise KieError(400, "The request body must be a JSON object")
    return body


async def apply_rule(rule: RequestRule | None) -> None:
    """Hold the request for the rule's hang, then raise its error (if it has one)."""
    if rule is None:
        return
    if rule.hang_ms:
        await asyncio.sleep(rule.hang_ms / 1000)  # a fault: the client is meant to time out
    error = rule.error()
    if error is not None:
        raise error


class KieApi:
    """Serve the api.kie.ai endpoints of one sandbox."""

    def __init__(self, sandbox: KieSandbox) -> None:
        """Bind the handlers to one sandbox."""
        self._sandbox = sandbox

    def routes(self, families: list[Family]) -> list[web.RouteDef]:
        """Return the route table: every family's create and status, credit, download-url."""
        routes = [
            web.get("/api/v1/chat/credit", self._endpoint(self.credit)),
            web.post("/api/v1/common/download-url", self._endpoint(self.download_url)),
        ]
        for family in families:
            routes.append(web.post(family.create_path, self._endpoint(self._create(family))))
            routes.append(web.get(family.status_path, self._endpoint(self._status(family))))
        return routes

    def _endpoint(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a handler returning a body: errors become Kie error bodies, codes are counted."""

        async def wrapped(request: web.Request) -> web.Response:
            try:
                body = await handler(request)
            except KieError as exc:
                body = error_body(exc)
            self._sandbox.count_answer(request, body["code"])
            return api_response(body, http_status_errors=self._sandbox.config.http_status_errors)

        return wrapped

    def _create(self, family: Family) -> Handler:
        """Build the create handler of one family."""

        async def create(request: web.Request) -> dict[str, Any]:
            sandbox = self._sandbox
            account = sandbox.accounts.authenticate(request)
            spec = family.parse(await read_object(request), sandbox.catalog)
            rule = sandbox.faults.request("create", spec.model, family.name)
            if rule is not None and not rule.created:
                await apply_rule(rule)
            cost = sandbox.config.task_cost_credits
            sandbox.accounts.check_credits(account, cost)
            sandbox.accounts.check_rate(account)
            task = sandbox.engine.create(family, spec, account, cost)
            plan = task.plan
            if plan is not None and plan.callback is not None and plan.callback.early:
                await sandbox.engine.finish_early(task)
            if rule is not None and rule.created:
                await apply_rule(rule)
            return envelope({"taskId": task.task_id})

        return create

    def _status(self, family: Family) -> Handler:
        """Build the status handler of one family."""

        async def status(request: web.Request) -> dict[str, Any]:
            sandbox = self._sandbox
            account = sandbox.accounts.authenticate(request)
            task_id = request.query.get("taskId")
            if not task_id:
                raise KieError(400, MSG_TASK_ID_REQUIRED)
            task = sandbox.engine.tasks.get(task_id)
            if task is None or task.family is not family or task.api_key != account.key:
                raise KieError(404, MSG_TASK_NOT_FOUND)
            await apply_rule(sandbox.faults.request("status", task.model, family.name))
            return envelope(family.status(task))

        return status

    async def credit(self, request: web.Request) -> dict[str, Any]:
        """Answer the account's remaining credits."""
        sandbox = self._sandbox
        account = sandbox.accounts.authenticate(request)
        await apply_rule(sandbox.faults.request("credit"))
        return envelope(as_number(account.credits))

    async def download_url(self, request: web.Request) -> dict[str, Any]:
        """Return a 20-minute direct link for a file URL this sandbox generated (else 422)."""
        sandbox = self._sandbox
        sandbox.accounts.authenticate(request)
        await apply_rule(sandbox.faults.request("download_url"))
        url = (await read_object(request)).get("url")
        if not isinstance(url, str) or not url:
            raise KieError(422, "url: is required")
        files = sandbox.files
        path = files.path_of(url)
        source = files.get(path) if path is not None else None
        now_s = time.monotonic()
        if source is None or not source.live(now_s):
            raise KieError(422, "url: only files generated by kie.ai can be downloaded")
        link = StoredFile(
            source.data,
            source.mime_type,
            source.name,
            now_s + sandbox.config.download_url_ttl_s,
        )
        return envelope(files.put_random(LINK_FOLDER, link))


def record_code(request: web.Request, code: int) -> None:
    """Write the answer's body code into the request log entry."""
    entry = request.get(ENTRY_KEY)
    if entry is not None:
        entry["code"] = code
