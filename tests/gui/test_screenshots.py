"""`scripts/screenshots` walks every page against the demo hub and writes the PNGs."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

from tests.support.screenshots import SHOTS, parse_size, split_list

ROOT = Path(__file__).resolve().parents[2]
# Pages whose layout this project keeps within a 900x600 window (the window grows to fit a
# page whose minimum is wider, and the script warns).
FITTING = (
    *("discover-card", "discover-license", "discover-files"),
    *("library", "downloads", "documents", "images", "settings"),
)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_script_writes_every_page_in_the_asked_size_and_scheme(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "MODELDECK_DATA_DIR")}
    command = [str(ROOT / "scripts" / "screenshots"), str(folder)]
    result = subprocess.run(
        # --quick: no chat reply and no image (engines and torch: a minute); the demo hub's
        # runnable models have their own test (tests/core/test_demo_hub_models.py).
        [*command, "--sizes", "900x600", "--schemes", "dark", "--quick"],
        cwd=tmp_path,  # the script finds the repository itself
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    expected = {f"{shot.name}-900x600-dark.png" for shot in SHOTS}
    assert {path.name for path in folder.iterdir()} == expected
    for name in FITTING:
        assert png_size(folder / f"{name}-900x600-dark.png") == (900, 600), name
    assert all((folder / name).stat().st_size > 10_000 for name in expected)


def test_sizes_and_schemes_may_be_listed_with_spaces_or_commas() -> None:
    assert split_list(["900x600", "1280x800,1920x1080"]) == ["900x600", "1280x800", "1920x1080"]
    assert [parse_size(size) for size in split_list(["900x600, 1920X1080"])] == [
        (900, 600),
        (1920, 1080),
    ]
