"""The committed *_pb2.py / *_pb2_grpc.py modules must match their .proto files."""

from pathlib import Path

import pytest
from ray.protocol import generate

pytest.importorskip("grpc_tools")


def test_generated_protocol_modules_are_up_to_date(tmp_path: Path):
    written = generate.generate(tmp_path)
    assert written, "no .proto files found"
    stale = []
    for fresh in written:
        committed = generate.PROTOCOL_DIR / fresh.name
        if not committed.exists() or committed.read_text() != fresh.read_text():
            stale.append(fresh.name)
    assert not stale, (
        f"Generated modules are stale: {stale}. Regenerate with `python runtime/ray/protocol/generate.py`."
    )


def test_every_proto_has_committed_modules():
    for proto in generate.proto_files():
        assert (generate.PROTOCOL_DIR / f"{proto.stem}_pb2.py").exists(), proto.name
        assert (generate.PROTOCOL_DIR / f"{proto.stem}_pb2_grpc.py").exists(), proto.name
