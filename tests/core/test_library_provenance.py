"""Provenance of library models (`list --json`) and `verify`: a model pulled from the fake hub,
one another tool put in the HF cache, and an imported file; a flipped byte is reported."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.commands import library as library_commands
from app.commands import pull
from app.core import Core
from app.library import AppFolders, Library
from app.library.provenance import FileOutcome, FileToVerify, verify_files
from tests.core.test_library_layouts import gguf_bytes, write, write_hf_repo
from tests.support.hub_server import HubServer

MODEL = os.urandom(300_000)
MODEL_SHA = hashlib.sha256(MODEL).hexdigest()
CARD = "---\nlicense: mit\n---\n# Tiny\n"


@pytest.fixture
def core(hub_server: HubServer, data_dir: Path, hf_home: Path) -> Iterator[Core]:
    opened = Core.open(data_dir=data_dir, endpoint_override=hub_server.url)
    yield opened
    opened.close()


def run_library(core: Core, *argv: str, library: Library | None = None) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="modeldeck")
    library_commands.register(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    status = library_commands.run(
        core, parser.parse_args(argv), out, library=library or core.library, err=err
    )
    return status, out.getvalue(), err.getvalue()


def pulled(core: Core, *argv: str) -> None:
    parser = argparse.ArgumentParser(prog="modeldeck")
    pull.register(parser.add_subparsers(dest="command"))
    assert pull.run(core, parser.parse_args(["pull", *argv]), io.StringIO()) == pull.EXIT_OK


def listed(core: Core, name: str, library: Library | None = None) -> dict[str, Any]:
    status, out, _err = run_library(core, "list", "--json", library=library)
    assert status == 0
    entries = {entry["name"]: entry for entry in json.loads(out)}
    return entries[name]


def flip_a_byte(path: Path, offset: int = 1000) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def test_a_pulled_model_carries_its_provenance_in_list_json(
    core: Core, hub_server: HubServer
) -> None:
    commit = hub_server.add_repo(
        "org/tiny", {"tiny-Q4_K_M.gguf": MODEL, "config.json": b"{}"}, card=CARD
    )
    before = datetime.now(UTC)
    pulled(core, "org/tiny")  # the whole repository: its card comes too

    provenance = listed(core, "tiny-Q4_K_M")["provenance"]
    assert provenance["hub"] == hub_server.url
    assert provenance["repo_id"] == "org/tiny"
    assert provenance["revision"] == "main"
    assert provenance["commit"] == commit
    assert provenance["downloaded_by_modeldeck"] is True
    assert datetime.fromisoformat(provenance["downloaded_at"]) >= before.replace(microsecond=0)
    assert provenance["sha256"] == MODEL_SHA
    assert (provenance["license"], provenance["license_source"]) == ("mit", "at-download")
    assert provenance["verified_at"] is None and provenance["verified_intact"] is None
    # This hub reports no scans: recorded as such, never as "safe".
    assert provenance["scans_at_download"] == {"tiny-Q4_K_M.gguf": "not scanned"}


def test_the_hubs_scan_verdict_at_download_is_kept_even_after_the_hub_changes_it(
    core: Core, hub_server: HubServer
) -> None:
    hub_server.add_repo("org/tiny", {"tiny-Q4_K_M.gguf": MODEL, "config.json": b"{}"})
    hub_server.set_scans("org/tiny", {"tiny-Q4_K_M.gguf": "caution"})
    pulled(core, "org/tiny")
    hub_server.set_scans("org/tiny", {}, scans_done=True)  # later: all safe upstream

    entry = listed(core, "tiny-Q4_K_M")
    assert entry["provenance"]["scans_at_download"] == {"tiny-Q4_K_M.gguf": "caution"}
    found = next(e for e in core.library.scan() if e.name == "tiny-Q4_K_M")
    assert found.provenance is not None
    assert "Hub scan at download: caution (tiny-Q4_K_M.gguf)" in found.provenance.lines()


def test_a_pinned_pull_has_no_ref_and_another_tools_copy_no_download_date(
    core: Core, hub_server: HubServer, hf_home: Path
) -> None:
    commit = hub_server.add_repo("org/tiny", {"tiny-Q4_K_M.gguf": MODEL}, card=CARD)
    pulled(core, "org/tiny", "--revision", commit)
    write_hf_repo(hf_home / "hub", "org/other-GGUF", {"other-Q8_0.gguf": gguf_bytes()})

    pinned = listed(core, "tiny-Q4_K_M")["provenance"]
    assert (pinned["revision"], pinned["commit"]) == (None, commit)
    assert pinned["downloaded_by_modeldeck"] is True

    other = listed(core, "other-Q8_0")["provenance"]
    assert other["repo_id"] == "org/other-GGUF" and other["revision"] == "main"
    assert other["hub"] is None and other["downloaded_at"] is None
    assert other["downloaded_by_modeldeck"] is False


def test_verify_passes_then_reports_a_flipped_byte(core: Core, hub_server: HubServer) -> None:
    hub_server.add_repo("org/tiny", {"tiny-Q4_K_M.gguf": MODEL}, card=CARD)
    pulled(core, "org/tiny", "*.gguf")
    library = core.library
    (entry,) = library.find("tiny-Q4_K_M")
    seen: list[tuple[int, int]] = []

    result = library.verify(entry.key, progress=lambda done, total: seen.append((done, total)))
    assert result.intact, result.summary()
    assert [check.outcome for check in result.files] == [FileOutcome.INTACT]
    assert seen[-1] == (len(MODEL), len(MODEL))
    good = listed(core, "tiny-Q4_K_M")["provenance"]
    assert good["verified_intact"] is True and good["verified_at"] is not None

    location = entry.usable_location
    assert location is not None
    flip_a_byte(location.path.resolve())
    result = library.verify(entry.key)
    assert not result.intact
    (damaged,) = result.damaged
    assert damaged.name == "tiny-Q4_K_M.gguf" and damaged.expected == MODEL_SHA
    assert damaged.actual != MODEL_SHA
    assert "tiny-Q4_K_M.gguf is damaged" in result.summary()
    assert "Download it again" in result.summary()
    bad = listed(core, "tiny-Q4_K_M")["provenance"]
    assert bad["verified_intact"] is False

    status, out, err = run_library(core, "verify", "tiny-Q4_K_M")
    assert status == library_commands.EXIT_ERROR and out == ""
    (line,) = err.splitlines()
    assert line.startswith("modeldeck: tiny-Q4_K_M: tiny-Q4_K_M.gguf is damaged")


def test_verify_checks_small_files_by_git_blob_id_and_imports_by_recorded_sha256(
    tmp_path: Path, core: Core
) -> None:
    config = b'{"model_type": "llama"}'
    snapshot = write_hf_repo(tmp_path / "cache", "org/plain", {"config.json": config})
    blob = (snapshot / "config.json").resolve()
    checks = [FileToVerify(path=blob, name="config.json", git_oid=blob.name)]
    assert verify_files("plain", checks, at=datetime.now(UTC)).intact
    flip_a_byte(blob, offset=3)
    result = verify_files("plain", checks, at=datetime.now(UTC))
    assert [check.outcome for check in result.files] == [FileOutcome.DAMAGED]
    alone = [FileToVerify(path=blob, name="config.json")]  # nothing to compare with
    result = verify_files("plain", alone, at=datetime.now(UTC))
    assert [check.outcome for check in result.files] == [FileOutcome.UNCHECKED]
    assert "nothing was recorded to compare with" in result.summary()

    data = gguf_bytes()
    imported = write(tmp_path / "models" / "mine-Q4_0.gguf", data)
    library = Library(core.database, hf_cache_dir=tmp_path / "none", app_folders=AppFolders())
    library.import_paths([imported])
    core.database.execute(
        "UPDATE library_imports SET sha256 = ?", (hashlib.sha256(data).hexdigest(),)
    )
    (entry,) = library.scan()
    assert entry.provenance is not None and entry.provenance.repo_id is None
    assert library.verify(entry.key).intact
    flip_a_byte(imported, offset=len(data) - 1)
    assert not library.verify(entry.key).intact
    status, _out, err = run_library(core, "verify", "mine-Q4_0", library=library)
    assert status == library_commands.EXIT_ERROR and "is damaged" in err
