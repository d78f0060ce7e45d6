"""The gallery: migration 6, paging thousands of rows, deleting files, indexing PNGs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from app.images import Gallery, ImageParams, ModelRef, make_thumbnail, save_png
from app.images.engine import GeneratedImage
from app.images.png_metadata import A1111_KEY, ImageMetadata
from app.store import Database

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_migration_6_makes_the_images_table(database: Database) -> None:
    (version,) = database.fetch_one("PRAGMA user_version") or (0,)
    assert version >= 6
    columns = {row[1] for row in database.fetch_all("PRAGMA table_info(images)")}
    assert columns >= {"path", "thumbnail", "params", "model", "width", "height", "created_at"}


def test_pages_of_two_thousand_images_are_fast_and_newest_first(
    database: Database, tmp_path: Path
) -> None:
    gallery = Gallery(database, folder=tmp_path / "images")
    rows = [
        (
            str(tmp_path / f"image-{n:04d}.png"),
            json.dumps({"prompt": "p", "seed": n, "width": 512, "height": 512}),
            "tiny",
            512,
            512,
            n,
            (START + timedelta(seconds=n)).isoformat(timespec="microseconds"),
        )
        for n in range(2000)
    ]
    with database.transaction() as connection:
        connection.executemany(
            "INSERT INTO images (path, params, model, width, height, seed, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    assert gallery.count() == 2000
    started = time.perf_counter()
    first = gallery.page(0, 100)
    last = gallery.page(1950, 100)
    elapsed = time.perf_counter() - started
    assert [image.seed for image in first[:3]] == [1999, 1998, 1997]
    assert len(last) == 50
    assert last[-1].seed == 0
    assert first[0].params == ImageParams(prompt="p", seed=1999)
    assert elapsed < 0.5  # two indexed queries; generous for a busy machine
    plan = database.fetch_all(
        "EXPLAIN QUERY PLAN SELECT id FROM images ORDER BY created_at DESC, id DESC LIMIT 10"
    )
    assert any("images_by_creation" in str(row) for row in plan)
    seen = {image.id for offset in range(0, 2000, 300) for image in gallery.page(offset, 300)}
    assert len(seen) == 2000


def test_delete_removes_file_thumbnail_and_row(database: Database, tmp_path: Path) -> None:
    gallery = Gallery(database, folder=tmp_path / "images")
    path = tmp_path / "a.png"
    Image.new("RGB", (64, 64), "red").save(path)
    thumbnail = make_thumbnail(path, gallery.thumbnail_dir)
    image = gallery.add(
        path, ImageParams(prompt="red", seed=3), width=64, height=64, thumbnail=thumbnail
    )
    assert gallery.get(image.id) == image
    assert gallery.delete(image.id)
    assert not path.exists()
    assert not thumbnail.exists()
    assert gallery.count() == 0
    assert not gallery.delete(image.id)


def test_deleting_an_image_whose_file_is_gone_still_forgets_it(
    database: Database, tmp_path: Path
) -> None:
    gallery = Gallery(database, folder=tmp_path)
    image = gallery.add(tmp_path / "gone.png", ImageParams(prompt=""), width=64, height=64)
    assert gallery.delete(image.id)
    assert gallery.count() == 0


def test_adding_the_same_path_again_updates_it(database: Database, tmp_path: Path) -> None:
    gallery = Gallery(database, folder=tmp_path)
    first = gallery.add(tmp_path / "x.png", ImageParams(prompt="a"), width=64, height=64)
    second = gallery.add(tmp_path / "x.png", ImageParams(prompt="b"), width=64, height=64)
    assert second.id == first.id
    assert second.params == ImageParams(prompt="b")
    assert gallery.count() == 1


def test_generated_images_and_foreign_pngs_are_indexed(database: Database, tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    gallery = Gallery(database, folder=tmp_path / "images")
    params = ImageParams(prompt="ours", seed=9, width=64, height=64, model=ModelRef(name="tiny"))
    ours = tmp_path / "ours.png"
    save_png(
        Image.new("RGB", (64, 64), "blue"),
        ours,
        ImageMetadata(params=params, seconds=0.5, created_at="2026-02-03T04:05:06+00:00"),
    )
    added = gallery.add_generated(
        GeneratedImage(
            path=ours,
            thumbnail=None,
            seed=9,
            width=64,
            height=64,
            seconds=0.5,
            params=params,
            sampler="DDIM",
            created_at="2026-02-03T04:05:06+00:00",
        )
    )
    assert (added.model, added.seed, added.seconds) == ("tiny", 9, 0.5)
    assert added.created_at == datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)

    info = PngInfo()
    info.add_text(A1111_KEY, "a fox\nSteps: 12, Sampler: Euler, CFG scale: 4, Seed: 5, Size: 96x64")
    foreign = tmp_path / "foreign.png"
    Image.new("RGB", (96, 64), "green").save(foreign, pnginfo=info)
    imported = gallery.add_file(foreign)
    assert imported.params is not None
    assert (imported.params.prompt, imported.params.steps, imported.seed) == ("a fox", 12, 5)
    assert (imported.width, imported.height) == (96, 64)
    assert imported.thumbnail is not None
    with Image.open(imported.thumbnail) as thumbnail:
        assert thumbnail.format == "JPEG"
        assert max(thumbnail.size) <= 256
    reread = gallery.add_file(ours)  # our own chunk wins, the created time comes from it
    assert reread.id == added.id
    assert reread.params == params


def test_thumbnails_are_small_and_never_overwrite_each_other(tmp_path: Path) -> None:
    source = tmp_path / "big.png"
    Image.new("RGB", (1024, 512), "white").save(source)
    first = make_thumbnail(source, tmp_path / "thumbs")
    second = make_thumbnail(source, tmp_path / "thumbs")
    assert first != second
    with Image.open(first) as image:
        assert image.size == (256, 128)


def test_page_refuses_negative_ranges(database: Database, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Gallery(database, folder=tmp_path).page(-1, 10)


def test_output_folder_is_per_day_under_the_data_dir(database: Database, data_dir: Path) -> None:
    gallery = Gallery(database)
    assert gallery.folder == data_dir / "images"
    assert gallery.output_dir(datetime(2026, 3, 4)) == data_dir / "images" / "2026-03-04"
