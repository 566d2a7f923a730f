"""An instance process whose only leader work is a fenced write every WRITE_INTERVAL_S.

Run as `python -m sandbox.harness.probe_instance [--crash-after N]` with a full environment; the
database must have the `probe_writes` table (see probe.PROBE_TABLE_SQL). Each write records
the term and the server's clock, so a test can measure failover gaps and prove that no write
of an old term lands after a newer term's first write.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from psycopg_pool import AsyncConnectionPool

from config import ConfigError, Settings, load_settings
from supervisor.aio import wait_event
from supervisor.election import Leadership
from supervisor.instance import Instance
from supervisor.logs import setup_logging
from supervisor.runtime_state import RuntimeState
from supervisor.services import Composition

WRITE_INTERVAL_S = 0.02
INSERT_SQL = b"INSERT INTO probe_writes (instance_id, term) VALUES (%s, %s)"


class FencedWriter:
    """Write one probe row per interval under the term fence; optionally crash after N."""

    name = "fenced-writer"

    def __init__(self, pool: AsyncConnectionPool, instance_id: str, crash_after: int) -> None:
        self._pool = pool
        self._instance_id = instance_id
        self._crash_after = crash_after

    async def run(self, leadership: Leadership | None) -> None:
        assert leadership is not None
        written = 0
        while not leadership.draining.is_set():
            async with leadership.fenced(self._pool) as conn:
                await conn.execute(INSERT_SQL, (self._instance_id, leadership.term))
            written += 1
            if self._crash_after and written >= self._crash_after:
                raise RuntimeError("probe crash on purpose")
            await wait_event(leadership.draining, WRITE_INTERVAL_S)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crash-after", type=int, default=0)
    args = parser.parse_args()
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 78
    setup_logging(level=settings.log_level, instance_id=settings.instance_id,
                  secrets=settings.secret_values())

    async def compose(settings: Settings, pool: AsyncConnectionPool,
                      state: RuntimeState) -> Composition:
        return Composition(leader_only=[FencedWriter(pool, settings.instance_id,
                                                     args.crash_after)])

    async def run() -> int:
        return await Instance(settings, compose).run()

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
