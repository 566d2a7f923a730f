"""Async client for the Kie sandbox control API (/_sandbox/...)."""

from __future__ import annotations

from typing import Any

from sandbox.common.control import ControlClient, compact


class KieSandboxClient(ControlClient):
    """Wrap every /_sandbox/ endpoint of the Kie sandbox."""

    async def health(self) -> bool:
        """Tell whether the sandbox answers."""
        return bool((await self._request("GET", "/health"))["ok"])

    async def stats(self) -> dict[str, Any]:
        """Return the counters and the answers by body code."""
        result: dict[str, Any] = await self._request("GET", "/stats")
        return result

    async def wait(self, *, timeout_s: float = 10.0, **conditions: int) -> dict[str, Any]:
        """Block until e.g. `tasks_succeeded_at_least=5` holds; SandboxTimeout otherwise."""
        return await self._wait(conditions, timeout_s)

    async def get_config(self) -> dict[str, Any]:
        """Return the current configuration."""
        result: dict[str, Any] = await self._request("GET", "/config")
        return result

    async def configure(self, **changes: Any) -> dict[str, Any]:
        """Change configuration keys (error style, rate limit, durations, sizes...)."""
        result: dict[str, Any] = await self._request("POST", "/config", payload=changes)
        return result

    async def reset(self, *, config: bool = False) -> None:
        """Forget tasks, files, logs, faults and counters; optionally the config too."""
        await self._request("POST", "/reset", payload={"config": config})

    async def tasks(
        self, *, model: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        """List tasks, optionally of one model or state."""
        answer = await self._request("GET", "/tasks", params={"model": model, "state": state})
        return list(answer["tasks"])

    async def task(self, task_id: str) -> dict[str, Any]:
        """Return one task (`task`) and its family status data (`status`)."""
        result: dict[str, Any] = await self._request("GET", f"/tasks/{task_id}")
        return result

    async def advance(self, task_id: str) -> dict[str, Any]:
        """Move a running task to its next state (waiting, queuing, generating, its end)."""
        result: dict[str, Any] = (await self._request("POST", f"/tasks/{task_id}/advance"))["task"]
        return result

    async def complete(self, task_id: str) -> dict[str, Any]:
        """End a running task with success now."""
        result: dict[str, Any] = (await self._request("POST", f"/tasks/{task_id}/complete"))["task"]
        return result

    async def fail(
        self, task_id: str, *, fail_code: str = "500", fail_msg: str | None = None
    ) -> dict[str, Any]:
        """End a running task with fail now."""
        payload = compact({"fail_code": fail_code, "fail_msg": fail_msg})
        result: dict[str, Any] = (
            await self._request("POST", f"/tasks/{task_id}/fail", payload=payload)
        )["task"]
        return result

    async def expire(self, task_id: str) -> int:
        """Make a task's result URLs expire now; return how many."""
        return int((await self._request("POST", f"/tasks/{task_id}/expire"))["expired"])

    async def callbacks(
        self, *, task_id: str | None = None, after_seq: int = 0
    ) -> list[dict[str, Any]]:
        """Return callback attempts (url, attempt, status, headers, body)."""
        answer = await self._request(
            "GET", "/callbacks", params={"task_id": task_id, "after_seq": after_seq or None}
        )
        return list(answer["items"])

    async def requests(
        self,
        *,
        contains: str | None = None,
        path_prefix: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return received requests (headers without Authorization)."""
        params = {
            "contains": contains,
            "path_prefix": path_prefix,
            "after_seq": after_seq or None,
            "limit": limit,
        }
        return list((await self._request("GET", "/requests", params=params))["items"])

    async def fault(self, kind: str, *, model: str = "*", **fields: Any) -> list[dict[str, Any]]:
        """Add a fault rule of `kind` (request, task, callback, result); return all rules."""
        rule = {"kind": kind, "model": model, **fields}
        return list((await self._request("POST", "/faults", payload=rule))["faults"])

    async def add_faults(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add raw rule objects (all validated before any is added); return all rules."""
        return list((await self._request("POST", "/faults", payload=rules))["faults"])

    async def faults(self) -> list[dict[str, Any]]:
        """List active fault rules."""
        return list((await self._request("GET", "/faults"))["faults"])

    async def clear_faults(self) -> None:
        """Remove every fault rule."""
        await self._request("DELETE", "/faults")

    async def set_credits(self, credits: float, *, key: str | None = None) -> None:
        """Set a key's balance (default: the first key)."""
        await self._request("POST", "/credits", payload=compact({"credits": credits, "key": key}))
