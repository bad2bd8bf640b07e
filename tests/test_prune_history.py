"""scripts/prune_history.py strips superseded checkpoints from a copy, keeps HEAD's tree, maps cited hashes."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "prune_history.py"
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}

pytest.importorskip("git_filter_repo", reason="git-filter-repo is a dev dependency: pip install -e '.[dev]'")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}).stdout.strip()


def commit(repo: Path, files: dict[str, bytes], message: str) -> str:
    for name, data in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def test_prune_strips_superseded_checkpoints_only_and_maps_citations(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    old_weights = os.urandom(300_000)  # incompressible, so the packed size must fall
    first = commit(src, {"benchmarks/b/checkpoints/m.pt": old_weights, "README.md": b"first\n"}, "first table")
    commit(src, {"benchmarks/b/checkpoints/m.pt": b"new weights", "data/old.pt": b"not a checkpoint",
                 "README.md": f"table rendered at commit {first[:7]}; sha {first[:12]}; hex 0123456789\n".encode()},
           "second table")
    old_blob = git(src, "rev-parse", f"{first}:benchmarks/b/checkpoints/m.pt")
    tree = git(src, "rev-parse", "HEAD^{tree}")

    out = tmp_path / "pruned"
    p = subprocess.run([sys.executable, str(SCRIPT), "--repo", str(src), "--out", str(out)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, **IDENTITY})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 superseded checkpoint blobs" in p.stdout

    # the copy lost the superseded blob, and its tree before the citation commit is the source's HEAD tree
    assert subprocess.run(["git", "-C", str(out), "cat-file", "-e", old_blob]).returncode != 0
    assert git(out, "rev-parse", "HEAD~1^{tree}") == tree
    assert git(out, "show", "HEAD:benchmarks/b/checkpoints/m.pt") == "new weights"
    # the cited commit is mapped to its rewrite, at the same length; other hex is left alone
    readme = (out / "README.md").read_text()
    new_first = git(out, "rev-list", "--max-parents=0", "HEAD")
    assert new_first != first and git(out, "log", "-1", "--format=%s", new_first) == "first table"
    assert readme == f"table rendered at commit {new_first[:7]}; sha {new_first[:12]}; hex 0123456789\n"
    before, after = map(float, re.search(r"packed history: ([\d.]+) MB -> ([\d.]+) MB", p.stdout).groups())
    assert after < before

    # the source repository is untouched
    assert git(src, "cat-file", "-t", old_blob) == "blob"
    assert git(src, "rev-parse", "HEAD^{tree}") == tree


def test_prune_refuses_an_existing_out_folder(tmp_path):
    (tmp_path / "taken").mkdir()
    p = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "taken")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines() == [f"prune_history: --out {tmp_path / 'taken'} already exists; "
                                             "fix: name a new folder"]
