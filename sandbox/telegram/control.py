"""Async client for the sandbox control API (/_sandbox/...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from sandbox.common.control import DEFAULT_CLIENT_TIMEOUT_S, ControlClient, compact
from sandbox.common.control import SandboxError as SandboxError
from sandbox.common.control import SandboxTimeout as SandboxTimeout


class SandboxClient(ControlClient):
    """Wrap every /_sandbox/ endpoint; pass `session` to reuse an aiohttp session."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        *,
        bot_id: int | None = None,
        timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S,
    ) -> None:
        """Target the sandbox at `base_url` (as returned by TelegramSandbox.start)."""
        super().__init__(base_url, session, timeout_s=timeout_s)
        self._bot_id = bot_id

    def _default_params(self) -> dict[str, str]:
        """Select the bot of this client on every call."""
        return {"bot_id": str(self._bot_id)} if self._bot_id is not None else {}

    # ------------------------------------------------------------ inject

    async def inject(self, items: Sequence[Mapping[str, Any]]) -> list[int | None]:
        """Inject activity items; return update ids (None for ones allowed_updates filtered)."""
        answer = await self._request("POST", "/inject", payload=list(items))
        return list(answer["update_ids"])

    async def inject_message(
        self, chat_id: int, text: str, *, user_id: int | None = None, **fields: Any
    ) -> int | None:
        """Inject one text message (a `/command` text gets a bot_command entity)."""
        item = {"kind": "message", "chat_id": chat_id, "user_id": user_id, "text": text, **fields}
        return (await self.inject([compact(item)]))[0]

    async def inject_callback(
        self,
        chat_id: int,
        data: str,
        *,
        message_id: int | None = None,
        user_id: int | None = None,
        **fields: Any,
    ) -> int | None:
        """Inject a button press on a bot message (default: the chat's latest bot message)."""
        item = {
            "kind": "callback",
            "chat_id": chat_id,
            "user_id": user_id,
            "data": data,
            "message_id": message_id,
            **fields,
        }
        return (await self.inject([compact(item)]))[0]

    async def inject_photo(
        self, chat_id: int, *, caption: str | None = None, user_id: int | None = None, **fields: Any
    ) -> int | None:
        """Inject a photo message carrying a generated PNG."""
        item = {
            "kind": "photo",
            "chat_id": chat_id,
            "user_id": user_id,
            "caption": caption,
            **fields,
        }
        return (await self.inject([compact(item)]))[0]

    # ------------------------------------------------------------ payments

    async def pay(self, chat_id: int, *, message_id: int | None = None,
                  user_id: int | None = None, deadline_s: float | None = None,
                  **fields: Any) -> dict[str, Any]:
        """The user pays an invoice (default: the chat's latest): a pre_checkout_query."""
        item = {"chat_id": chat_id, "message_id": message_id, "user_id": user_id,
                "deadline_s": deadline_s, **fields}
        result: dict[str, Any] = await self._request("POST", "/pay", payload=compact(item))
        return result

    async def payments(self) -> dict[str, Any]:
        """Return every checkout (status, answered_after_ms) and charge."""
        result: dict[str, Any] = await self._request("GET", "/payments")
        return result

    async def redeliver_payment(self, charge_id: str) -> int | None:
        """Deliver a charge's successful_payment message again (a new update id)."""
        answer = await self._request("POST", "/payments/redeliver",
                                     payload={"charge_id": charge_id})
        return answer["update_id"]

    # ------------------------------------------------------------ inspect

    async def chat(self, chat_id: int, *, after_seq: int = 0) -> dict[str, Any]:
        """Return the chat record: chat object, block state and its `messages` log."""
        result: dict[str, Any] = await self._request(
            "GET", f"/chats/{chat_id}", params={"after_seq": after_seq or None}
        )
        return result

    async def chat_messages(self, chat_id: int, *, after_seq: int = 0) -> list[dict[str, Any]]:
        """Return the bot's actions in one chat, in order."""
        return list((await self.chat(chat_id, after_seq=after_seq))["messages"])

    async def chats(self) -> list[dict[str, Any]]:
        """List known chats."""
        return list((await self._request("GET", "/chats"))["chats"])

    async def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """Return the current Bot API object of one stored message."""
        result: dict[str, Any] = (
            await self._request("GET", f"/chats/{chat_id}/messages/{message_id}")
        )["message"]
        return result

    async def outbox(
        self, after_seq: int = 0, limit: int = 1_000, *, method: str | None = None
    ) -> list[dict[str, Any]]:
        """Return bot actions with seq > after_seq (global order)."""
        answer = await self._request(
            "GET", "/outbox", params={"after_seq": after_seq, "limit": limit, "method": method}
        )
        return list(answer["items"])

    async def stats(self) -> dict[str, Any]:
        """Return counters, per-method calls, errors and webhook state."""
        result: dict[str, Any] = await self._request("GET", "/stats")
        return result

    async def health(self) -> bool:
        """Tell whether the sandbox answers."""
        return bool((await self._request("GET", "/health"))["ok"])

    # ------------------------------------------------------------ wait

    async def wait(
        self, *, timeout_s: float = 10.0, chat_id: int | None = None, **conditions: int
    ) -> dict[str, int]:
        """Block until e.g. `outbox_at_least=5` holds; raise SandboxTimeout otherwise."""
        result: dict[str, int] = await self._wait({**conditions, "chat_id": chat_id}, timeout_s)
        return result

    async def wait_outbox(self, count: int, *, timeout_s: float = 10.0) -> dict[str, int]:
        """Wait until the bot performed at least `count` recorded actions."""
        return await self.wait(timeout_s=timeout_s, outbox_at_least=count)

    async def wait_confirmed(self, count: int, *, timeout_s: float = 10.0) -> dict[str, int]:
        """Wait until at least `count` updates were confirmed by the bot."""
        return await self.wait(timeout_s=timeout_s, confirmed_at_least=count)

    async def wait_chat(
        self, chat_id: int, count: int, *, timeout_s: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until a chat has at least `count` bot actions and return its log."""
        await self.wait(timeout_s=timeout_s, chat_id=chat_id, chat_at_least=count)
        return await self.chat_messages(chat_id)

    # ------------------------------------------------------------ configure

    async def get_config(self) -> dict[str, Any]:
        """Return the current configuration."""
        result: dict[str, Any] = await self._request("GET", "/config")
        return result

    async def configure(self, **changes: Any) -> dict[str, Any]:
        """Change configuration keys (rate limits, webhook timings...) at run time."""
        result: dict[str, Any] = await self._request("POST", "/config", payload=changes)
        return result

    async def reset(self, *, webhook: bool = False, config: bool = False) -> None:
        """Clear recorded state; optionally the webhook and the configuration too."""
        await self._request("POST", "/reset", payload={"webhook": webhook, "config": config})

    async def fault(
        self,
        method: str,
        *,
        fail_next: int = 0,
        status: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
        delay_ms: int = 0,
        chat_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Add a fault rule (`method` may be `*`); return the active rules."""
        rule = compact(
            {
                "method": method,
                "fail_next": fail_next,
                "status": status,
                "description": description,
                "retry_after": retry_after,
                "delay_ms": delay_ms,
                "chat_id": chat_id,
            }
        )
        return list((await self._request("POST", "/faults", payload=rule))["faults"])

    async def faults(self) -> list[dict[str, Any]]:
        """List active fault rules."""
        return list((await self._request("GET", "/faults"))["faults"])

    async def clear_faults(self) -> None:
        """Remove every fault rule."""
        await self._request("DELETE", "/faults")

