"""The hub's security scans: read through huggingface_hub, refused by `pull`, shown by `info`."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import build_parser
from app.commands import pull
from app.core import Core
from app.hub.huggingface import HuggingFaceHub
from app.hub.security import ScanLevel, file_scan_from_hub, repo_security_from_hub
from tests.core.conftest import Cli as CliRunner
from tests.support.hub_server import FileScanStatus, HubServer

GGUF = b"GGUF" + bytes(range(256)) * 8
PICKLE = b"\x80\x02}q\x00." + b"\0" * 100
REPO = "org/scanned"
FILES = {
    "model-Q4_K_M.gguf": GGUF,
    "pytorch_model.bin": PICKLE,
    "config.json": b"{}",
    "notes.txt": b"hello",
    "extra.txt": b"bye",
}
VIRUS = FileScanStatus("unsafe", virus_names=("Eicar-Test-Signature",))
PICKLED = FileScanStatus(
    "suspicious",
    pickle_imports=(("collections", "OrderedDict", "innocuous"), ("os", "system", "suspicious")),
)


@pytest.fixture
def scanned(hub_server: HubServer) -> HubServer:
    hub_server.add_repo(REPO, FILES, card="# Scanned\n")
    hub_server.set_scans(
        REPO,
        {
            "pytorch_model.bin": PICKLED,
            "notes.txt": VIRUS,
            "config.json": "caution",
            "extra.txt": "unscanned",
        },
    )
    return hub_server


@pytest.fixture
def core(hub_server: HubServer, data_dir: Path, hf_home: Path) -> Iterator[Core]:
    opened = Core.open(data_dir=data_dir, endpoint_override=hub_server.url)
    yield opened
    opened.close()


def parse(*argv: str) -> argparse.Namespace:
    """`modeldeck pull ARGV` as the CLI's own parser reads it."""
    return build_parser().parse_args(["pull", *argv])


def test_every_level_comes_through_huggingface_hub_with_its_finding(
    scanned: HubServer, hub: HuggingFaceHub
) -> None:
    details = hub.model_details(REPO)

    assert details.security is not None and details.security.scans_done
    levels = {file.path: details.scan_of(file.path).level for file in details.files}
    assert levels == {
        "model-Q4_K_M.gguf": ScanLevel.SAFE,
        "pytorch_model.bin": ScanLevel.SUSPICIOUS,
        "notes.txt": ScanLevel.UNSAFE,
        "config.json": ScanLevel.CAUTION,
        "extra.txt": ScanLevel.NOT_SCANNED,
        "README.md": ScanLevel.SAFE,
    }
    assert "Eicar-Test-Signature" in details.scan_of("notes.txt").finding
    assert "os.system" in details.scan_of("pytorch_model.bin").finding
    # The per-file findings come from the expanded listing, as huggingface_hub asks for it.
    trees = scanned.requests_to(r"/tree/")
    assert trees and all(request.query.get("expand") == ["true"] for request in trees)


def test_a_hub_without_scan_data_says_not_scanned_never_safe(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    hub_server.add_repo(REPO, FILES, card="# Plain\n")

    details = hub.model_details(REPO)

    assert details.security is None
    assert {details.scan_of(file.path).level for file in details.files} == {ScanLevel.NOT_SCANNED}
    assert not hub_server.requests_to(r"/tree/")  # no listing asked of a hub that does not scan


def test_expanded_listings_page_at_fifty_and_every_page_is_read(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    many = {f"part-{index:03}.txt": b"x" for index in range(120)}
    hub_server.add_repo(REPO, many)
    hub_server.set_scans(REPO, {"part-119.txt": VIRUS})

    details = hub.model_details(REPO)

    assert details.scan_of("part-119.txt").level is ScanLevel.UNSAFE
    assert len(hub_server.requests_to(r"/tree/")) == 3


def test_hostile_scan_answers_are_read_as_not_scanned_or_worse() -> None:
    assert repo_security_from_hub("yes") is None
    odd = repo_security_from_hub(
        {"scansDone": "true", "filesWithIssues": [{"path": "a", "level": "safe"}, 5, {"x": 1}]}
    )
    assert odd is not None and not odd.scans_done
    assert odd.scan_of("a").level is ScanLevel.CAUTION  # a file with issues is never safe
    assert odd.scan_of("b").level is ScanLevel.NOT_SCANNED
    virus = file_scan_from_hub("safe", {"virusFound": True, "virusNames": ["X" * 5000]}, None)
    assert virus.level is ScanLevel.UNSAFE and len(virus.finding) <= 300
    assert file_scan_from_hub(None, None, None).level is ScanLevel.NOT_SCANNED


@pytest.mark.parametrize(
    ("path", "level"), [("pytorch_model.bin", "suspicious"), ("notes.txt", "unsafe")]
)
def test_pull_refuses_a_flagged_file_with_exit_6_and_one_line(
    scanned: HubServer,
    core: Core,
    hf_home: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    path: str,
    level: str,
) -> None:
    out = io.StringIO()
    assert pull.run(core, parse(REPO, path), out) == pull.EXIT_FLAGGED == 6

    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"modeldeck: {path} of {REPO} was flagged {level}")
    assert "--allow-unsafe" in lines[0]
    assert not scanned.requests_to(r"/resolve/|^/lfs/")  # not one byte was fetched
    assert not list((hf_home / "hub").glob("models--org--scanned/blobs/*"))


def test_allow_unsafe_downloads_it_and_safe_or_caution_files_need_nothing(
    scanned: HubServer, core: Core, hf_home: Path
) -> None:
    out = io.StringIO()
    args = parse(REPO, "model-Q4_K_M.gguf", "config.json", "extra.txt")
    assert pull.run(core, args, out) == pull.EXIT_OK

    args = parse(REPO, "notes.txt", "--allow-unsafe", "--json")
    assert pull.run(core, args, out) == pull.EXIT_OK
    blobs = {path.name for path in (hf_home / "hub").glob("models--org--scanned/blobs/*")}
    assert hashlib.sha256(GGUF).hexdigest() in blobs


def test_pull_json_says_why_it_refused(
    scanned: HubServer, core: Core, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert pull.run(core, parse(REPO, "--json"), out) == 6

    event = json.loads(out.getvalue().strip().splitlines()[-1])
    assert event["event"] == "error" and event["kind"] == "flagged" and event["exit_code"] == 6
    assert "notes.txt" in event["message"] and "(and 1 more)" in event["message"]


def test_info_json_and_text_show_the_verdicts(scanned: HubServer, cli: CliRunner) -> None:
    result = cli.run("--endpoint", scanned.url, "info", REPO, "--json")
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    files = {file["path"]: file["scan"] for file in report["files"]}
    assert files["notes.txt"]["level"] == "unsafe"
    assert "Eicar-Test-Signature" in files["notes.txt"]["finding"]
    assert files["extra.txt"]["level"] == "not scanned"
    assert report["security"] == {
        "reported": True,
        "scans_done": True,
        "flagged": ["notes.txt", "pytorch_model.bin"],
    }
    assert report["gguf_models"][0]["scan"]["level"] == "safe"

    text = cli.run("--endpoint", scanned.url, "info", REPO).stdout
    assert "hub scans:   done; 2 files flagged: notes.txt, pytorch_model.bin" in text
    assert any(
        line.startswith("notes.txt") and line.endswith("unsafe") for line in text.splitlines()
    )


def test_info_json_from_a_hub_without_scans(hub_server: HubServer, cli: CliRunner) -> None:
    hub_server.add_repo(REPO, {"config.json": b"{}"})
    result = cli.run("--endpoint", hub_server.url, "info", REPO, "--json")
    report = json.loads(result.stdout)
    assert report["security"] == {"reported": False, "scans_done": False, "flagged": []}
    assert {file["scan"]["level"] for file in report["files"]} == {"not scanned"}


def test_modeldecks_own_check_sums_up_the_header_sniff(tmp_path: Path) -> None:
    from app.library.own_check import checks_file, own_check

    pickle = tmp_path / "model.bin"
    pickle.write_bytes(PICKLE)
    broken = tmp_path / "model.gguf"
    broken.write_bytes(b"GGUF")
    assert own_check(pickle).level is ScanLevel.CAUTION and own_check(pickle).word == "pickle"
    assert own_check(broken).word == "unreadable"
    assert checks_file("a/b.safetensors") and not checks_file("config.json")
