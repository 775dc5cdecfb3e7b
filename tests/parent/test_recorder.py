from __future__ import annotations

from pathlib import Path

from parent.recorder import TrafficRecorder


def test_appends_per_route_and_direction_inside_its_directory(tmp_path: Path) -> None:
    recorder = TrafficRecorder(tmp_path / "seen")
    recorder("kms", "in", b"hello ")
    recorder("kms", "in", b"kms")
    recorder("kms", "out", b"reply")
    recorder("../escape", "in", b"x")
    recorder.close()
    files = {p.name: p.read_bytes() for p in (tmp_path / "seen").iterdir()}
    assert files == {
        "kms-in.bin": b"hello kms",
        "kms-out.bin": b"reply",
        ".._escape-in.bin": b"x",
    }
    assert not (tmp_path / "escape-in.bin").exists()
