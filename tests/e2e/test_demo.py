"""Smoke test of `python -m supervisor demo`: a short real run with two leader faults, the
shoppers' top-ups decided by the simulated operator, and money spent on generations."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from sandbox.harness.postgres import find_bindir

pytestmark = pytest.mark.chaos  # real processes and signals

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S: Final = 120.0
DURATION_S: Final = 25
FAULT_EVERY_S: Final = 10  # faults at 10 s (SIGKILL) and 20 s (SIGTERM)
MIN_SENT: Final = 300  # ~30 messages/s for 25 s


def _pg_binaries() -> bool:
    """Tell whether the demo finds PostgreSQL's server binaries (the machine's or bundled)."""
    try:
        find_bindir()
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not _pg_binaries(),
                    reason="needs PostgreSQL server binaries (apt-get install postgresql)")
def test_demo_faults_the_leader_twice_and_loses_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "demo", "--duration", str(DURATION_S),
         "--fault-every", str(FAULT_EVERY_S)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"^lost:\s+0$", result.stdout, re.MULTILINE), output
    sent = re.search(r"^sent:\s+(\d+) updates", result.stdout, re.MULTILINE)
    assert sent and int(sent.group(1)) >= MIN_SENT, output
    processed = re.search(r"^processed:\s+(\d+)", result.stdout, re.MULTILINE)
    assert processed and processed.group(1) == sent.group(1), output
    assert re.search(r"^failovers:\s+2, gap p50 \d+ ms, max \d+ ms$", result.stdout,
                     re.MULTILINE), output
    assert re.search(r"#1 .* SIGKILL .* gap \d+ ms", result.stdout), output
    assert re.search(r"#2 .* SIGTERM .* gap \d+ ms", result.stdout), output
    assert re.search(r"^generations:\s+[1-9]\d* requested, .* 0 unfinished; [\d ]+\.\d\d ₽"
                     r" charged$", result.stdout, re.MULTILINE), output
    topups = re.search(r"^top-ups:\s+(\d+) requested, (\d+) approved \((\d+) another amount\),"
                       r" (\d+) rejected, 0 pending; ([\d ]+)\.\d\d ₽ credited", result.stdout,
                       re.MULTILINE)
    assert topups, output
    requested, approved, _, rejected, credited = topups.groups()
    # Every receipt decided by the operator, across both faults; the approved ones credited.
    assert int(approved) >= 1 and int(requested) == int(approved) + int(rejected), output
    assert int(credited.replace(" ", "")) > 0, output
    assert re.search(r"^double top-ups: 0$", result.stdout, re.MULTILINE), output
    assert re.search(r"^double charges: 0$", result.stdout, re.MULTILINE), output
    assert re.search(r"^invariants:\s+ok \(generations and payments\)$", result.stdout,
                     re.MULTILINE), output
    assert "stopped; logs kept in" in result.stdout, output
