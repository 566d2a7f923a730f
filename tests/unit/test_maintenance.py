"""Maintenance schedules what the areas give it and knows no area itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from services import maintenance
from services.maintenance import Maintenance, ScheduledJob
from supervisor.election import Leadership

# What the scheduler may build on: the standard library, APScheduler, the supervisor.
ALLOWED_IMPORT_ROOTS = {"__future__", "asyncio", "collections", "dataclasses", "datetime",
                        "logging", "apscheduler", "supervisor"}


def test_maintenance_imports_no_other_area() -> None:
    tree = ast.parse(Path(maintenance.__file__).read_text(encoding="utf-8"))
    roots = {alias.name.split(".")[0] for node in ast.walk(tree)
             if isinstance(node, ast.Import) for alias in node.names}
    roots |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom)}
    assert roots <= ALLOWED_IMPORT_ROOTS, roots - ALLOWED_IMPORT_ROOTS


def test_two_jobs_with_one_name_are_refused() -> None:
    async def run(leadership: Leadership) -> None:
        return None

    with pytest.raises(ValueError, match="unique"):
        Maintenance([ScheduledJob("prune", 60, run), ScheduledJob("prune", 600, run)])
