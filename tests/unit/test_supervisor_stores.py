"""The supervisor's SQL is read only by its typed stores."""

from __future__ import annotations

import re
from pathlib import Path

from supervisor.stores import ElectionStore, InstanceStore, MigrationStore

SUPERVISOR = Path(__file__).resolve().parents[2] / "supervisor"
STORE_MODULES = {"stores.py", "sqlstore.py"}


def test_no_supervisor_module_but_the_stores_reads_queries_by_name() -> None:
    for path in SUPERVISOR.glob("*.py"):
        if path.name in STORE_MODULES:
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"QUERIES\[|QueryStore\(", text), path.name


def test_every_named_query_has_a_store_method_of_its_name() -> None:
    for store, sql in ((ElectionStore, "election.sql"), (InstanceStore, "instances.sql"),
                       (MigrationStore, "migrations.sql")):
        text = (SUPERVISOR / "sql" / sql).read_text(encoding="utf-8")
        names = re.findall(r"^-- name: (\w+)$", text, re.MULTILINE)
        assert names
        for name in names:
            assert callable(getattr(store, name, None)), f"{store.__name__}.{name}"
