"""Update detection: `modeldeck outdated` and `modeldeck update`, against a hub that moves on."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.commands import pull, updates
from app.core import Core
from app.library.updates import UpdateRecords, tracked_revisions
from tests.core.conftest import REPO_ROOT
from tests.support.cli_process import cli_environment
from tests.support.hub_server import DropAfter, Fault, FlipByte, HubServer, Stall
from tests.support.waiting import wait_until

BIG = os.urandom(1_000_000)  # the weights: unchanged upstream
OLD_SHARD = os.urandom(200_000)
NEW_SHARD = os.urandom(300_000)
REPO = "org/tiny"


@pytest.fixture
def core(hub_server: HubServer, data_dir: Path, hf_home: Path) -> Iterator[Core]:
    opened = Core.open(data_dir=data_dir, endpoint_override=hub_server.url)
    yield opened
    opened.close()


@pytest.fixture
def old_commit(hub_server: HubServer) -> str:
    return hub_server.add_repo(
        REPO,
        {
            "tiny-Q4_K_M.gguf": BIG,
            "extra.safetensors": OLD_SHARD,
            "config.json": b'{"v": 1}',
        },
        card="# Tiny\n",
    )


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="modeldeck")
    commands = parser.add_subparsers(dest="command")
    pull.register(commands)
    updates.register(commands)
    return parser.parse_args(list(argv))


def pulled(core: Core, *argv: str) -> None:
    assert pull.run(core, parse("pull", *argv), io.StringIO()) == pull.EXIT_OK


def upstream_commit(hub_server: HubServer) -> str:
    """Two files change (one big, one small); the GGUF, the README stay."""
    return hub_server.commit_changes(
        REPO, {"extra.safetensors": NEW_SHARD, "config.json": b'{"v": 2}'}
    )


def outdated_json(core: Core) -> dict[str, Any]:
    out = io.StringIO()
    assert updates.run_outdated(core, parse("outdated", "--json"), out) == updates.EXIT_OK
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def snapshot(hf_home: Path, commit: str) -> Path:
    return hf_home / "hub" / "models--org--tiny" / "snapshots" / commit


def ref_main(hf_home: Path) -> str:
    return (hf_home / "hub" / "models--org--tiny" / "refs" / "main").read_text()


def test_a_model_is_outdated_after_an_upstream_commit_with_what_changed(
    core: Core, hub_server: HubServer, old_commit: str
) -> None:
    pulled(core, REPO)
    assert outdated_json(core)["outdated"] == []

    new_commit = upstream_commit(hub_server)
    report = outdated_json(core)

    assert report["checked"] == 1 and report["unchecked"] == []
    [entry] = report["outdated"]
    assert entry["repo_id"] == REPO and entry["ref"] == "main"
    assert entry["local_commit"] == old_commit and entry["remote_commit"] == new_commit
    assert entry["update_available"] is True
    assert sorted(f["path"] for f in entry["changed_files"]) == ["config.json", "extra.safetensors"]
    assert sorted(entry["unchanged_files"]) == ["README.md", "tiny-Q4_K_M.gguf"]
    assert entry["removed_files"] == []
    assert entry["download_bytes"] == len(NEW_SHARD) + len(b'{"v": 2}')
    # The answer is remembered for the window (the Library column) and the daily throttle.
    remembered = UpdateRecords(core.database).outdated()
    assert remembered[(REPO, old_commit)].remote_commit == new_commit


def test_the_text_listing_reads_like_the_library_column(
    core: Core, hub_server: HubServer, old_commit: str
) -> None:
    pulled(core, REPO)
    upstream_commit(hub_server)
    out = io.StringIO()
    assert updates.run_outdated(core, parse("outdated"), out) == updates.EXIT_OK
    assert out.getvalue().startswith(f"{REPO} (main): update available: 2 files, +300 kB")


def test_a_pinned_revision_is_never_outdated(
    core: Core, hub_server: HubServer, old_commit: str, hf_home: Path
) -> None:
    pulled(core, REPO, "--revision", old_commit)
    upstream_commit(hub_server)

    assert tracked_revisions(hf_home / "hub") == []
    report = outdated_json(core)
    assert report["outdated"] == [] and report["checked"] == 0
    assert updates.run_update(core, parse("update", REPO), io.StringIO()) == (
        updates.EXIT_NOT_FOUND
    )


def test_update_fetches_only_the_changed_files_and_offers_the_old_revision(
    core: Core, hub_server: HubServer, old_commit: str, hf_home: Path
) -> None:
    pulled(core, REPO)
    new_commit = upstream_commit(hub_server)
    hub_server.clear_requests()

    out = io.StringIO()
    assert updates.run_update(core, parse("update", REPO), out) == updates.EXIT_OK

    # The unchanged big file was not sent again, from the hub or its CDN.
    assert hub_server.requests_to("tiny-Q4_K_M.gguf") == []
    assert hub_server.requests_to(r"extra\.safetensors", method="GET")
    new = snapshot(hf_home, new_commit)
    assert (new / "tiny-Q4_K_M.gguf").read_bytes() == BIG
    assert (new / "extra.safetensors").read_bytes() == NEW_SHARD
    assert (new / "config.json").read_bytes() == b'{"v": 2}'
    assert ref_main(hf_home) == new_commit
    # Without --yes the old revision stays, and its delete plan is shown.
    assert (snapshot(hf_home, old_commit) / "extra.safetensors").read_bytes() == OLD_SHARD
    text = out.getvalue()
    assert "fetched 2 files" in text and "reused 2" in text
    assert f"The old revision {old_commit[:12]} frees" in text
    assert str(snapshot(hf_home, old_commit)) in text
    assert outdated_json(core)["outdated"] == []


def test_update_with_yes_deletes_the_old_revision_but_not_the_shared_blobs(
    core: Core, hub_server: HubServer, old_commit: str, hf_home: Path
) -> None:
    pulled(core, REPO)
    new_commit = upstream_commit(hub_server)

    out = io.StringIO()
    assert updates.run_update(core, parse("update", REPO, "--yes"), out) == updates.EXIT_OK

    assert not snapshot(hf_home, old_commit).exists()
    assert (snapshot(hf_home, new_commit) / "tiny-Q4_K_M.gguf").read_bytes() == BIG
    assert "Deleted the old revision" in out.getvalue()


def test_the_old_snapshot_stays_the_model_until_the_new_one_verifies(
    core: Core,
    hub_server: HubServer,
    old_commit: str,
    hf_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pulled(core, REPO)
    new_commit = upstream_commit(hub_server)
    # Every copy of the changed shard arrives damaged: the integrity check refuses it.
    hub_server.inject(Fault(FlipByte(10), path=r"extra\.safetensors", times=None))

    assert updates.run_update(core, parse("update", REPO), io.StringIO()) == updates.EXIT_ERROR
    assert "old revision is untouched" in capsys.readouterr().err

    assert ref_main(hf_home) == old_commit
    old = snapshot(hf_home, old_commit)
    assert (old / "extra.safetensors").read_bytes() == OLD_SHARD
    assert (old / "tiny-Q4_K_M.gguf").read_bytes() == BIG
    assert not (snapshot(hf_home, new_commit) / "extra.safetensors").exists()
    assert outdated_json(core)["outdated"] != []  # still the old one, still outdated

    hub_server.clear_faults()
    assert updates.run_update(core, parse("update", REPO), io.StringIO()) == updates.EXIT_OK
    assert ref_main(hf_home) == new_commit
    assert (snapshot(hf_home, new_commit) / "extra.safetensors").read_bytes() == NEW_SHARD


def test_a_failed_updates_half_filled_snapshot_is_not_a_second_copy_in_the_library(
    core: Core, hub_server: HubServer, hf_home: Path
) -> None:
    old_commit = hub_server.add_repo(
        REPO, {"tiny-Q4_K_M.gguf": BIG, "tokenizer.json": b'{"v": 1}'}, card="# Tiny\n"
    )
    pulled(core, REPO)
    new_commit = hub_server.commit_changes(REPO, {"tokenizer.json": b'{"v": 2}'})
    # The unchanged GGUF is linked into the new snapshot first; then the tokenizer fails.
    hub_server.inject(Fault(FlipByte(3), path=r"tokenizer\.json", times=None))
    assert updates.run_update(core, parse("update", REPO), io.StringIO()) == updates.EXIT_ERROR
    assert (snapshot(hf_home, new_commit) / "tiny-Q4_K_M.gguf").exists()

    # It waits in Downloads for a retry; the Library shows the model once, at the old commit.
    [model] = [entry for entry in core.library.scan() if entry.name == "tiny-Q4_K_M"]
    assert {location.revision for location in model.locations} == {old_commit}

    hub_server.clear_faults()
    assert updates.run_update(core, parse("update", REPO), io.StringIO()) == updates.EXIT_OK
    [model] = [entry for entry in core.library.scan() if entry.name == "tiny-Q4_K_M"]
    assert new_commit in {location.revision for location in model.locations}


def test_an_up_to_date_model_is_left_alone(
    core: Core, hub_server: HubServer, old_commit: str
) -> None:
    pulled(core, REPO)
    hub_server.clear_requests()
    out = io.StringIO()
    assert updates.run_update(core, parse("update", REPO), out) == updates.EXIT_OK
    assert "is up to date" in out.getvalue()
    assert hub_server.requests_to(r"/resolve/") == []


def test_outdated_offline_says_so(core: Core, hub_server: HubServer, old_commit: str) -> None:
    pulled(core, REPO)
    hub_server.stop()
    out = io.StringIO()
    assert updates.run_outdated(core, parse("outdated", "--json"), out) == updates.EXIT_OFFLINE
    report = json.loads(out.getvalue())
    assert report["outdated"] == [] and report["unchecked"][0]["offline"] is True


def test_the_daily_throttle(
    core: Core, hub_server: HubServer, old_commit: str, hf_home: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    pulled(core, REPO)
    records = UpdateRecords(core.database)
    tracked = tracked_revisions(hf_home / "hub")
    assert records.due(tracked) == tracked
    outdated_json(core)
    assert records.due(tracked) == []
    later = datetime.now(UTC) + timedelta(days=1, minutes=1)
    assert records.due(tracked, now=later) == tracked


# -- a real process, killed mid-update ---------------------------------------------------------

BIG_SHARD_SIZE = 20_000_000
FIRST_PART = 5_000_000
CDN_GET = r"^/lfs/"


def start_update(hub_server: HubServer, data_dir: Path, hf_home: Path) -> subprocess.Popen[str]:
    env = cli_environment(data_dir, hf_home)
    code = "import sys; from app.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["update", "--endpoint", hub_server.url, REPO]
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_an_update_killed_midway_continues_and_never_broke_the_old_snapshot(
    core: Core,
    hub_server: HubServer,
    old_commit: str,
    data_dir: Path,
    hf_home: Path,
) -> None:
    pulled(core, REPO)
    shard = hf_home.parent / "extra.safetensors"
    shard.write_bytes(os.urandom(BIG_SHARD_SIZE))
    new_commit = hub_server.commit_changes(REPO, {"extra.safetensors": shard})
    hub_server.inject(Fault(DropAfter(FIRST_PART), path=CDN_GET, method="GET"))
    hub_server.inject(Fault(Stall(30), path=CDN_GET, method="GET"))
    blob_sha = hashlib.sha256(shard.read_bytes()).hexdigest()
    blobs = hf_home / "hub" / "models--org--tiny" / "blobs"
    partial = blobs / f"{blob_sha}.incomplete"

    child = start_update(hub_server, data_dir, hf_home)

    def reached() -> bool:
        assert child.poll() is None, child.communicate()
        return partial.exists() and partial.stat().st_size == FIRST_PART

    wait_until(reached, timeout=30, interval=0.02, message="the update never got halfway")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)

    assert ref_main(hf_home) == old_commit
    old = snapshot(hf_home, old_commit)
    assert (old / "extra.safetensors").read_bytes() == OLD_SHARD
    assert (old / "tiny-Q4_K_M.gguf").read_bytes() == BIG

    hub_server.clear_faults()
    hub_server.clear_requests()
    assert updates.run_update(core, parse("update", REPO), io.StringIO()) == updates.EXIT_OK
    cdn = hub_server.requests_to(CDN_GET, "GET")
    assert [request.range for request in cdn] == [f"bytes={FIRST_PART}-"]  # continued
    assert ref_main(hf_home) == new_commit
    new = snapshot(hf_home, new_commit)
    assert (new / "extra.safetensors").read_bytes() == shard.read_bytes()
    assert (new / "tiny-Q4_K_M.gguf").read_bytes() == BIG
