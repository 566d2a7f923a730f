"""TaskState: the one normalized outcome of a Kie task, from a status answer or a callback."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class TaskStatus(enum.StrEnum):
    """Where a Kie task is; every family's own states map onto these."""

    # Accepted, not started (market waiting/queuing, Runway wait/queueing, Suno PENDING).
    PENDING = "pending"
    # Being generated, or a state we do not know (unknown states are never terminal).
    RUNNING = "running"
    # Done with at least one result URL (or a text result).
    SUCCEEDED = "succeeded"
    # Done without a result; fail_code and fail_message say why.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task's status, its result URLs when it succeeded, Kie's code and text when it failed.

    fail_message is Kie's raw text: for logs and failure classification, never for users.
    """

    status: TaskStatus
    task_id: str = ""
    result_urls: tuple[str, ...] = ()
    # Text outputs (speech-to-text) come as an object instead of URLs.
    result_object: Mapping[str, Any] | None = None
    fail_code: str = ""
    fail_message: str = ""
    # A family's own status word (e.g. Suno's FIRST_SUCCESS), for logs.
    raw_status: str = field(default="", compare=False)

    @property
    def terminal(self) -> bool:
        """Return whether the task will not change any more."""
        return self.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)
