"""Tasks the sandbox runs: their state, request, timings and results."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.kie.families.base import Family
    from sandbox.kie.faults import TaskPlan


class TaskState(StrEnum):
    """Life of a task; the market spelling (families map it to their own fields)."""

    WAITING = "waiting"  # accepted, not yet queued
    QUEUING = "queuing"  # in the processing queue
    GENERATING = "generating"  # being processed
    SUCCESS = "success"  # done, results available
    FAIL = "fail"  # done, failCode/failMsg set


TERMINAL_STATES = frozenset({TaskState.SUCCESS, TaskState.FAIL})


class MediaKind(StrEnum):
    """What a task produces."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"


@dataclass(slots=True)
class TaskSpec:
    """What a create request asks for, as a family understood it."""

    model: str  # market model, or the family's API model value, or the family name
    callback_url: str | None
    request: dict[str, Any]  # the body as received (param / paramJson)
    media: MediaKind
    results: int = 1  # result files per task
    ratio: str | None = None  # aspect ratio spelling, for image and video dimensions
    image_format: str = "png"  # png or jpeg
    prompt: str = ""


def now_ms() -> int:
    """Return the Unix time in milliseconds."""
    return int(time.time() * 1000)


@dataclass(slots=True, eq=False)
class Task:
    """One generation task."""

    task_id: str
    family: Family
    spec: TaskSpec
    api_key: str
    credits: float
    created_ms: int = field(default_factory=now_ms)
    updated_ms: int = 0
    completed_ms: int | None = None
    state: TaskState = TaskState.WAITING
    fail_code: str = ""
    fail_msg: str = ""
    result_urls: list[str] = field(default_factory=list)
    cover_urls: list[str] = field(default_factory=list)  # Suno covers, Runway thumbnails
    plan: TaskPlan | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Start with updated = created."""
        self.updated_ms = self.created_ms

    @property
    def model(self) -> str:
        """Return the model name the task was created with."""
        return self.spec.model

    @property
    def done(self) -> bool:
        """Tell whether the task reached success or fail."""
        return self.state in TERMINAL_STATES

    def cost_time_ms(self) -> int:
        """Return the processing time in milliseconds (0 while running)."""
        return (self.completed_ms - self.created_ms) if self.completed_ms else 0

    def cancel_timers(self) -> None:
        """Stop the task's pending transitions."""
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def summary(self) -> dict[str, Any]:
        """Return the control API's view of the task."""
        return {
            "task_id": self.task_id,
            "family": self.family.name,
            "model": self.model,
            "state": str(self.state),
            "callback_url": self.spec.callback_url,
            "request": self.spec.request,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
            "completed_ms": self.completed_ms,
            "fail_code": self.fail_code,
            "fail_msg": self.fail_msg,
            "result_urls": self.result_urls,
            "cover_urls": self.cover_urls,
            "credits": self.credits,
        }
