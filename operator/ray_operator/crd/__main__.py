"""`python -m ray_operator.crd [REPO]`: write crds/*.yaml and helm/crds/*.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

from ray_operator.crd.render import render_files


def main(argv: list[str]) -> int:
    repo = Path(argv[0]) if argv else Path(__file__).resolve().parents[3]
    for folder in (repo / "crds", repo / "helm" / "crds"):
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in render_files().items():
            (folder / name).write_text(text)
            print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
