"""Regenerate every `*.proto` in this folder into `<name>_pb2.py` / `<name>_pb2_grpc.py` beside it.

Run: `python -m ray.protocol.generate` (or `python runtime/ray/protocol/generate.py`). Needs grpcio-tools.
`generate(out_dir)` writes elsewhere, which the staleness test uses to compare with the committed modules.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTOCOL_DIR = Path(__file__).resolve().parent
RUNTIME_ROOT = PROTOCOL_DIR.parent.parent  # the folder that holds the `ray` package


def proto_files() -> list[Path]:
    return sorted(PROTOCOL_DIR.glob("*.proto"))


def generate(out_root: Path = RUNTIME_ROOT) -> list[Path]:
    """Generate modules for every proto under `out_root/ray/protocol/`; returns the written files."""
    import grpc_tools
    from grpc_tools import protoc  # imported here: only needed by developers, not at runtime

    include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    (out_root / "ray" / "protocol").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for proto in proto_files():
        rel = proto.relative_to(RUNTIME_ROOT)  # protoc names the generated imports after this path
        args = [
            "grpc_tools.protoc",
            f"-I{RUNTIME_ROOT}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(proto),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {rel}")
        stem = proto.stem
        written += [out_root / "ray" / "protocol" / f"{stem}_pb2.py", out_root / "ray" / "protocol" / f"{stem}_pb2_grpc.py"]
    return written


if __name__ == "__main__":
    for path in generate():
        print(path)
    sys.exit(0)
