#!/usr/bin/env python3
"""Print a content hash of everything a Dockerfile's build reads from its context.

`build-images` rebuilds an image only when this hash (or a base image) changes. It covers the
Dockerfile itself and every COPY/ADD source (files, and every file under a directory that git
does not ignore, so __pycache__ and virtualenvs do not force rebuilds). Sources copied from
another stage or image (`--from=`) are not in the context and are skipped.
"""

from __future__ import annotations

import glob
import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path


def logical_lines(dockerfile: Path) -> list[str]:
    """The Dockerfile's instructions with backslash continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def copy_sources(dockerfile: Path) -> list[str]:
    """The context paths (possibly globs) named by COPY/ADD instructions."""
    sources: list[str] = []
    for line in logical_lines(dockerfile):
        keyword, _, rest = line.partition(" ")
        if keyword.upper() not in ("COPY", "ADD"):
            continue
        rest = rest.strip()
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        paths = [a for a in args if not a.startswith("--")]
        sources.extend(paths[:-1])  # the last one is the destination
    return sources


def files_under(context: Path, source: str) -> list[Path]:
    """Files a source names: itself, a glob's matches, or the non-ignored files below a directory."""
    found: list[Path] = []
    for match in sorted(glob.glob(str(context / source))) or [str(context / source)]:
        path = Path(match)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            listed = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", str(path)],
                cwd=context, capture_output=True, check=True,
            ).stdout.split(b"\0")
            found.extend(context / name.decode() for name in listed if name)
        else:
            raise SystemExit(f"context_hash: COPY source {source!r} does not exist under {context}")
    return found


def context_hash(dockerfile: Path, context: Path) -> str:
    digest = hashlib.sha256(dockerfile.read_bytes())
    files = {f.resolve() for s in copy_sources(dockerfile) for f in files_under(context, s) if f.is_file()}
    for file in sorted(files):
        digest.update(str(file.relative_to(context.resolve())).encode() + b"\0")
        digest.update(oct(file.stat().st_mode & 0o777).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: context_hash.py DOCKERFILE CONTEXT_DIR")
    print(context_hash(Path(sys.argv[1]), Path(sys.argv[2])))
