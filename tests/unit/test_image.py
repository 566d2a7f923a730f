"""The production image holds the product only: no sandbox, benchmarks or tests."""

from __future__ import annotations

from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
DEVELOPMENT_ONLY: Final = ("sandbox", "bench", "tests")


def test_docker_context_leaves_the_development_folders_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip().strip("/") for line in lines}
    assert set(DEVELOPMENT_ONLY) <= ignored


def test_dockerfile_copies_none_of_the_development_folders() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in DEVELOPMENT_ONLY:
        assert f"COPY {folder}" not in dockerfile
        assert f"{folder}/__init__.py" not in dockerfile
