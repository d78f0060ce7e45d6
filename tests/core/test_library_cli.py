"""`modeldeck list|import|rm`, run through `app.commands.library.run` with a real core."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir

from app.commands import library as commands
from app.core import Core
from app.library import AppFolders, Library
from tests.core.test_library_layouts import (
    PICKLE_BYTES,
    app_folders,
    gguf_bytes,
    write,
    write_hf_repo,
    write_ollama,
)


class Terminal(io.StringIO):
    """Answers typed at a terminal."""

    def isatty(self) -> bool:
        return True


@dataclass
class Result:
    status: int
    out: str
    err: str


@dataclass
class Setup:
    core: Core
    cache: Path
    apps: AppFolders
    root: Path

    def run(self, *argv: str, stdin: io.StringIO | None = None) -> Result:
        parser = argparse.ArgumentParser(prog="modeldeck")
        commands.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(argv)
        library = Library(self.core.database, hf_cache_dir=self.cache, app_folders=self.apps)
        out, err = io.StringIO(), io.StringIO()
        status = commands.run(
            self.core, args, out, library=library, stdin=stdin or io.StringIO(), err=err
        )
        return Result(status, out.getvalue(), err.getvalue())


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    core = Core.open(data_dir=tmp_path / "data")
    cache = tmp_path / "hub"
    cache.mkdir()
    yield Setup(core, cache, app_folders(tmp_path / "apps"), tmp_path)
    core.close()


def test_list_shows_every_model_as_a_table_or_json(setup: Setup) -> None:
    data = gguf_bytes()
    write_hf_repo(setup.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": data})
    write_ollama(setup.apps.ollama[0], "tiny", "latest", data)
    write_ollama(setup.apps.ollama[0], "other", "latest", gguf_bytes(elements=40))
    result = setup.run("list")
    assert result.status == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["KEY", "NAME", "KIND", "QUANT", "SIZE", "WHERE"]
    assert "tiny-Q4_K_M" in lines[2] and "org/tiny-GGUF, Ollama" in lines[2]
    assert "other:latest" in lines[1]

    result = setup.run("list", "--json")
    listed = {item["name"]: item for item in json.loads(result.out)}
    tiny = listed["tiny-Q4_K_M"]
    assert tiny["kind"] == "LLM (GGUF)" and tiny["size"] == len(data)
    assert [loc["source"] for loc in tiny["locations"]] == ["hf-cache", "ollama"]
    assert tiny["locations"][1]["owned_by_other_app"] is True


def test_list_fits_80_columns_and_wide_shows_every_cell_whole(setup: Setup) -> None:
    long_repo = "a-very-long-organisation-name/an-even-longer-model-repository-name-GGUF"
    long_name = "an-even-longer-model-repository-name-with-many-words-Q4_K_M"
    write_hf_repo(setup.cache, long_repo, {f"{long_name}.gguf": gguf_bytes()})
    write_hf_repo(setup.cache, "org/no-lfs", {"notes.txt": b"hello"})  # key: hf:org/…@…
    lines = setup.run("list").out.splitlines()
    assert lines[0].split() == ["KEY", "NAME", "KIND", "QUANT", "SIZE", "WHERE"]
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    row = next(line for line in lines if line.startswith("hf:") is False and "LLM" in line)
    assert "an-even-longer" in row and "…" in row  # cut at the end, never in the middle
    assert "LLM GGUF" in row
    assert any(
        line.startswith("hf:org/no-lfs@") or line.startswith("hf:org/no-l") for line in lines
    )

    wide = setup.run("list", "--wide").out.splitlines()
    assert any(long_name in line and long_repo in line for line in wide)
    assert not any("…" in line for line in wide)
    assert any("LLM (GGUF)" in line for line in wide)


def test_list_on_an_empty_machine(setup: Setup) -> None:
    assert setup.run("list").out == "No models on this machine yet.\n"


def test_import_reports_what_was_taken_and_what_was_turned_down(setup: Setup) -> None:
    good = write(setup.root / "m" / "chat-Q8_0.gguf", gguf_bytes(file_type=7))
    pickle = write(setup.root / "m" / "old.ckpt", PICKLE_BYTES)
    result = setup.run("import", str(good), str(pickle))
    assert result.status == 0
    assert result.out.splitlines() == [
        "imported  chat-Q8_0  (LLM (GGUF), 416 B)",
        f"rejected  {pickle}: pickle — can run code when loaded; not supported",
    ]
    result = setup.run("import", str(pickle), "--json")
    assert result.status == 1  # nothing imported
    assert json.loads(result.out) == {
        "imported": [],
        "rejected": [
            {"path": str(pickle), "reason": "pickle — can run code when loaded; not supported"}
        ],
    }
    assert [item["name"] for item in json.loads(setup.run("list", "--json").out)] == ["chat-Q8_0"]


def test_rm_with_yes_deletes_a_cached_repo(setup: Setup) -> None:
    data = gguf_bytes()
    write_hf_repo(setup.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": data})
    result = setup.run("rm", "org/tiny-GGUF", "--yes")
    assert result.status == 0, result
    assert result.out.startswith("Deleting tiny-Q4_K_M frees 416 B:\n  Hugging Face cache: 416 B\n")
    assert result.out.endswith("Deleted tiny-Q4_K_M: 416 B freed.\n")
    assert not scan_cache_dir(setup.cache).repos


def test_rm_asks_at_a_terminal_and_refuses_without_one(setup: Setup) -> None:
    write_hf_repo(setup.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": gguf_bytes()})
    result = setup.run("rm", "tiny-Q4_K_M")
    assert result.status == 2
    assert result.err == "modeldeck: not deleting without --yes: input is not a terminal\n"
    result = setup.run("rm", "tiny-Q4_K_M", stdin=Terminal("n\n"))
    assert (result.status, result.err) == (0, "Delete? [y/N] ")
    assert result.out.endswith("Nothing deleted.\n")
    assert scan_cache_dir(setup.cache).repos
    result = setup.run("rm", "tiny-Q4_K_M", stdin=Terminal("y\n"))
    assert result.status == 0 and "freed" in result.out
    assert not scan_cache_dir(setup.cache).repos


def test_rm_keeps_other_apps_copies_unless_confirmed_twice(setup: Setup) -> None:
    data = gguf_bytes()
    write_hf_repo(setup.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": data})
    blob, _ = write_ollama(setup.apps.ollama[0], "tiny", "latest", data)
    result = setup.run("rm", "tiny-Q4_K_M", "--yes")
    assert result.status == 0
    assert "Ollama (another app's copy: asks again)" in result.out
    assert "Keeping the copies Ollama uses" in result.out
    assert blob.exists() and not scan_cache_dir(setup.cache).repos

    result = setup.run("rm", "tiny:latest", stdin=Terminal("y\nn\n"))
    assert result.err == "Delete? [y/N] Ollama will lose its copy. Delete it there too? [y/N] "
    assert result.out.endswith("Nothing deleted.\n") and blob.exists()
    result = setup.run("rm", "tiny:latest", stdin=Terminal("y\ny\n"))
    assert result.status == 0 and not blob.exists()


def test_rm_with_other_apps_and_yes_deletes_there_too(setup: Setup) -> None:
    blob, manifest = write_ollama(setup.apps.ollama[0], "tiny", "latest", gguf_bytes())
    result = setup.run("rm", "tiny:latest", "--yes", "--other-apps")
    assert result.status == 0, result
    assert not blob.exists() and not manifest.exists()


def test_rm_of_an_unknown_model_is_not_found(setup: Setup) -> None:
    result = setup.run("rm", "org/nothing", "--yes")
    assert result.status == 3
    assert result.err.startswith("modeldeck: No model in the library matches 'org/nothing'.")


def test_run_builds_its_library_from_the_core(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(setup.root / "home"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    setup.core.update_settings(hf_cache_dir=str(setup.cache))
    write_hf_repo(setup.cache, "org/tiny-GGUF", {"tiny-Q4_K_M.gguf": gguf_bytes()})
    write(setup.root / "home/.lmstudio/models/pub/repo/lm-Q4_K_M.gguf", gguf_bytes(elements=40))
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    assert commands.run(setup.core, parser.parse_args(["list", "--json"]), out) == 0
    names = sorted(item["name"] for item in json.loads(out.getvalue()))
    assert names == ["lm-Q4_K_M", "tiny-Q4_K_M"]
