"""The README's env table and render.yaml agree with the code's list of env keys (and the
benchmarks' pool with the deployed one)."""

from __future__ import annotations

import re
from pathlib import Path

from config import ENV_KEYS, REQUIRED_ENV_KEYS
from config.__main__ import markdown_table
from sandbox.harness.env import DEPLOYED_DB_MAXCONN

ROOT = Path(__file__).resolve().parents[2]


def test_readme_env_table_is_exactly_what_the_code_prints() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for row in markdown_table().splitlines():
        assert row in readme, f"README is missing or has a stale row: {row}"
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.MULTILINE))
    assert documented == {key.name for key in ENV_KEYS}


def test_render_blueprint_lists_every_required_key_and_no_unknown_one() -> None:
    blueprint = (ROOT / "render.yaml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s*- key: ([A-Z_]+)\s*$", blueprint, re.MULTILINE))
    assert set(REQUIRED_ENV_KEYS) <= listed
    assert listed <= {key.name for key in ENV_KEYS}


def test_render_blueprint_runs_two_instances_with_the_health_check() -> None:
    blueprint = (ROOT / "render.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s*numInstances: 2\s*$", blueprint, re.MULTILINE)
    assert re.search(r"^\s*healthCheckPath: /health\s*$", blueprint, re.MULTILINE)


def test_render_blueprint_deploys_the_pool_the_benchmarks_measure() -> None:
    blueprint = (ROOT / "render.yaml").read_text(encoding="utf-8")
    found = re.search(r"^\s*- key: DB_MAXCONN\s*\n\s*value: \"(\d+)\"\s*$", blueprint, re.MULTILINE)
    assert found is not None and int(found[1]) == DEPLOYED_DB_MAXCONN
