"""What every family provides: request parsing, status data and callback bodies.

Family request fields are declared as `services.catalog.InputField`s, so a family request is
checked with the same rules (types, enum values, ranges, lengths) as the catalog's inputs;
a violation is Kie's 422 with the field named in `msg`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from sandbox.kie.envelope import KieError
from sandbox.kie.tasks import Task, TaskSpec, TaskState
from services.catalog import Catalog, InputError, InputField

URL_SCHEMES = frozenset({"http", "https"})


class Family:
    """Base class: one Kie API family (create path, status path, shapes)."""

    name: ClassVar[str]
    create_path: ClassVar[str]
    status_path: ClassVar[str]
    task_id_prefix: ClassVar[str] = ""
    # Whether results come with a cover image (Suno covers, Runway thumbnails).
    covers: ClassVar[bool] = False

    def new_task_id(self) -> str:
        """Return a fresh opaque task id in the family's style."""
        return f"{self.task_id_prefix}{secrets.token_hex(16)}"

    def parse(self, body: Mapping[str, Any], catalog: Catalog) -> TaskSpec:
        """Validate a create body and return what it asks for (KieError 422 otherwise)."""
        raise NotImplementedError

    def status(self, task: Task) -> dict[str, Any]:
        """Return the `data` of the status endpoint."""
        raise NotImplementedError

    def callbacks(self, task: Task, state: TaskState) -> list[dict[str, Any]]:
        """Return the callback bodies sent when the task enters `state`, in order."""
        raise NotImplementedError


def check_fields(body: Mapping[str, Any], fields: Sequence[InputField]) -> dict[str, Any]:
    """Check `body` against `fields` (unknown, missing, type, enum, range, length)."""
    known = {f.name for f in fields}
    for name in body:
        if name not in known:
            raise KieError(422, f"{name}: is not a parameter of this API")
    clean: dict[str, Any] = {}
    for f in fields:
        value = body.get(f.name)
        if value is None:
            if f.required:
                raise KieError(422, f"{f.name}: is required")
            continue
        try:
            clean[f.name] = f.check(value)
        except InputError as exc:
            raise KieError(422, f"{exc.field}: {exc.reason}") from exc
    return clean


def callback_url(body: Mapping[str, Any], *, required: bool = False) -> str | None:
    """Return the body's `callBackUrl` (an http(s) URL) or None."""
    value = body.get("callBackUrl")
    if value is None or value == "":
        if required:
            raise KieError(422, "callBackUrl: is required")
        return None
    url = urlsplit(value) if isinstance(value, str) else None
    if url is None or url.scheme not in URL_SCHEMES or not url.netloc:
        raise KieError(422, f"callBackUrl: must be an http(s) URL, not {value!r}")
    return value


def one_of_ints(body: Mapping[str, Any], name: str, allowed: Sequence[int]) -> int | None:
    """Check an integer field limited to a few values (numeric strings accepted)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise KieError(422, f"{name}: {value!r} is not one of {list(allowed)!r}")
    return value


def text_time(epoch_ms: int | None, *, iso: bool = False) -> str | None:
    """Format a time as Kie's families do: "YYYY-MM-DD HH:mm:ss" or ISO "...T...Z" (UTC)."""
    if epoch_ms is None:
        return None
    pattern = "%Y-%m-%dT%H:%M:%SZ" if iso else "%Y-%m-%d %H:%M:%S"
    return time.strftime(pattern, time.gmtime(epoch_ms / 1000))


def param_json(task: Task) -> str:
    """Return the original request as the JSON string families echo back."""
    return orjson.dumps(task.spec.request).decode()


def success_flag(task: Task) -> int:
    """Return the families' successFlag: 0 generating, 1 success, 3 generation failed."""
    if task.state is TaskState.SUCCESS:
        return 1
    if task.state is TaskState.FAIL:
        return 3
    return 0


def error_code(task: Task) -> int | None:
    """Return the failure code as an int (families type errorCode as int or null)."""
    if task.state is not TaskState.FAIL:
        return None
    return int(task.fail_code) if task.fail_code.isdigit() else 500
