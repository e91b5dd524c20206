from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REAL_ROLLOUT = DATA / "benchflow-rollout-complete"
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def tree_digest(path: Path) -> str:
    """sha256 over every file's relative path and bytes: a folder's checksum."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()


@pytest.fixture
def rollout(tmp_path: Path) -> Path:
    """A writable copy of a real benchflow rollout folder (a completed run)."""
    dest = tmp_path / "jobs" / "notes-summary__abc123"
    shutil.copytree(REAL_ROLLOUT, dest)
    return dest
