"""Rewrite a copy of the history without its superseded checkpoints; the repository itself is untouched.

    python scripts/prune_history.py --out ../vrnn-pruned              # rewrite a copy, print what changed
    python scripts/prune_history.py --out ../vrnn-pruned --dry-run    # only count what would go

A checkpoint is superseded when its blob sits under a ``checkpoints/`` folder somewhere in HEAD's
history but nowhere in HEAD's tree: no committed table is computed from it any more. The copy is a
``git clone --no-local`` of ``--repo`` (default: this repository) rewritten by git-filter-repo
(``--strip-blobs-with-ids``), so every commit hash changes and HEAD's tree stays byte-identical
(checked). Committed text cites commits by hash ("commit d93a1ae"); one follow-up commit in the copy
maps every cited hash through filter-repo's ``commit-map`` to its rewritten commit, at the same length.
Citations of commits that the rewrite dropped (they changed nothing but stripped checkpoints) are
listed and left as they are.

Publishing the copy means a forced push of its main: that is the repository owner's decision, so this
script prints the commands and runs none of them.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = (".pt", ".pth", ".ckpt", ".safetensors")
HASH = re.compile(rb"(?<![0-9a-f])[0-9a-f]{7,40}(?![0-9a-f])")


def git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True)
    if done.returncode:
        sys.exit(f"prune_history: git {' '.join(args)} failed in {repo}: {done.stderr.decode().strip()}")
    return done.stdout


def packed_bytes(repo: Path) -> int:
    """Size of HEAD's whole history packed, as `git rev-list --objects HEAD | git pack-objects --stdout`."""
    objects = git(repo, "rev-list", "--objects", "HEAD")
    return len(git(repo, "pack-objects", "--stdout", "-q", data=objects))


def superseded(repo: Path) -> list[tuple[str, str]]:
    """(blob id, path) of every checkpoint blob in HEAD's history that HEAD's tree no longer holds."""
    in_head = {line.split()[2] for line in git(repo, "ls-tree", "-r", "HEAD").decode().splitlines()}
    found = []
    for line in git(repo, "rev-list", "--objects", "HEAD").decode().splitlines():
        oid, _, path = line.partition(" ")
        parts = path.split("/")
        if "checkpoints" in parts[:-1] and path.endswith(WEIGHTS) and oid not in in_head:
            found.append((oid, path))
    return found


def filter_repo() -> list[str]:
    """The git-filter-repo command: beside this Python (a venv's bin/) or on PATH."""
    beside = Path(sys.executable).parent / "git-filter-repo"
    found = str(beside) if beside.exists() else shutil.which("git-filter-repo")
    if not found:
        sys.exit("prune_history: git-filter-repo is not installed; fix: pip install git-filter-repo")
    return [found]


def map_citations(repo: Path, commit_map: dict[str, str]) -> tuple[int, list[str]]:
    """Rewrite every cited old commit hash in HEAD's tracked text files; returns (count, unmapped)."""
    count, unmapped = 0, set()
    for name in git(repo, "ls-files", "-z").split(b"\0"):
        path = repo / name.decode()
        if not name or not path.is_file():
            continue
        text = path.read_bytes()
        if b"\0" in text[:8000]:  # binary: checkpoints, figures, audio
            continue

        def swap(match: re.Match) -> bytes:
            nonlocal count
            short = match.group().decode()
            olds = [old for old in commit_map if old.startswith(short)]
            if len(olds) != 1:  # not a commit of the old history, or ambiguous
                return match.group()
            new = commit_map[olds[0]]
            if set(new) == {"0"}:
                unmapped.add(f"{name.decode()}: {short}")
                return match.group()
            count += 1
            return new[: len(short)].encode()

        mapped = HASH.sub(swap, text)
        if mapped != text:
            path.write_bytes(mapped)
    return count, sorted(unmapped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to copy (default: this one)")
    parser.add_argument("--out", type=Path, required=True, help="new folder for the rewritten copy")
    parser.add_argument("--dry-run", action="store_true", help="count the superseded checkpoints only")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()

    if args.out.exists() and not args.dry_run:
        sys.exit(f"prune_history: --out {args.out} already exists; fix: name a new folder")
    strip = superseded(repo)
    print(f"{len(strip)} superseded checkpoint blobs in {repo.name}'s history")
    if args.dry_run:
        return 0
    before = packed_bytes(repo)
    head_tree = git(repo, "rev-parse", "HEAD^{tree}").decode().strip()
    commits_before = int(git(repo, "rev-list", "--count", "HEAD"))

    subprocess.run(["git", "clone", "-q", "--no-local", str(repo), str(args.out)], check=True)
    out = args.out.resolve()
    ids = out / ".git" / "strip-blob-ids"
    ids.write_text("".join(f"{oid}\n" for oid, _ in strip))
    done = subprocess.run([*filter_repo(), "--strip-blobs-with-ids", str(ids), "--force", "--quiet"], cwd=out)
    if done.returncode:
        sys.exit(f"prune_history: git-filter-repo failed (exit {done.returncode}); {repo} is untouched")
    if git(out, "rev-parse", "HEAD^{tree}").decode().strip() != head_tree:
        sys.exit(f"prune_history: HEAD's tree changed in {out}; discard it ({repo} is untouched)")
    after = packed_bytes(out)

    commit_map = {}
    for line in (out / ".git" / "filter-repo" / "commit-map").read_text().splitlines()[1:]:
        old, new = line.split()
        commit_map[old] = new
    count, unmapped = map_citations(out, commit_map)
    if count:
        git(out, "commit", "-qam", "Map the commit hashes cited in committed text through the history rewrite "
            f"that stripped {len(strip)} superseded checkpoints (scripts/prune_history.py)")

    print(f"packed history: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB; HEAD's tree unchanged ({head_tree[:7]})")
    print(f"commits: {commits_before} -> {int(git(out, 'rev-list', '--count', 'HEAD'))}"
          f" (with the citation commit); {count} cited hashes mapped")
    for item in unmapped:
        print(f"  cites a commit the rewrite dropped, left as is: {item}")
    print(f"to publish (the owner's decision): cd {out} && git remote add origin <url> && git push --force origin HEAD:main")
    return 0


if __name__ == "__main__":
    sys.exit(main())
