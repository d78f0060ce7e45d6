"""Render the app icon (resources/icons/modeldeck.svg) at every size a platform asks for.

    python packaging/make_icons.py OUT_DIR

Writes OUT_DIR/modeldeck-N.png for each size in `ICON_SIZES`, OUT_DIR/modeldeck.ico (Windows)
and OUT_DIR/modeldeck.icns (macOS). Qt's SVG renderer draws each size from the vector source
(crisper small sizes than scaling one bitmap); Pillow packs the .ico and .icns. Only the SVG
is kept in the repository.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from modeldeck_bundle import (  # noqa: E402
    ICON_SIZES,
    MACOS_ICON_SIZES,
    NAME,
    ROOT,
    WINDOWS_ICON_SIZES,
)

SOURCE = ROOT / "resources" / "icons" / f"{NAME}.svg"


def render_pngs(out: Path, sizes: tuple[int, ...] = ICON_SIZES) -> dict[int, Path]:
    """Draw the SVG at each size into OUT/modeldeck-N.png (transparent background)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"cannot read the icon source {SOURCE}")
    out.mkdir(parents=True, exist_ok=True)
    written: dict[int, Path] = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = out / f"{NAME}-{size}.png"
        if not image.save(str(path)):
            raise SystemExit(f"could not write {path}")
        written[size] = path
    del app
    return written


def pack_ico_and_icns(pngs: dict[int, Path], out: Path) -> tuple[Path, Path]:
    """The Windows .ico and the macOS .icns, each holding its platform's sizes."""
    from PIL import Image

    ico = out / f"{NAME}.ico"
    largest = Image.open(pngs[max(WINDOWS_ICON_SIZES)])
    largest.save(ico, sizes=[(size, size) for size in WINDOWS_ICON_SIZES])
    icns = out / f"{NAME}.icns"
    mac = [Image.open(pngs[size]) for size in sorted(MACOS_ICON_SIZES, reverse=True)]
    mac[0].save(icns, append_images=mac[1:])
    return ico, icns


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    pngs = render_pngs(out)
    ico, icns = pack_ico_and_icns(pngs, out)
    print(f"{len(pngs)} PNGs ({min(pngs)}…{max(pngs)} px), {ico.name}, {icns.name} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
