"""The pgserver wheel's PostgreSQL, which the demo and the tests fall back on when the machine
has no server binaries, starts and takes every migration."""

from __future__ import annotations

import pytest

from sandbox.harness.postgres import ThrowawayCluster, bundled_bindir
from supervisor.migrations import apply_pending

BINDIR = bundled_bindir()

pytestmark = pytest.mark.skipif(BINDIR is None, reason="the pgserver wheel is not installed")


async def test_bundled_server_starts_and_takes_every_migration() -> None:
    cluster = ThrowawayCluster(bindir=BINDIR).init()
    try:
        cluster.start()
        status = await apply_pending(cluster.url)
    finally:
        cluster.destroy()
    assert status.ok and status.applied, status.as_dict()
