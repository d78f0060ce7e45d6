"""The demo hub's runnable models, as a person who follows README's "Trying it without the
internet" uses them: pull from the demo hub, chat with the GGUF, generate with the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.conftest import Cli
from tests.support.demo_hub import CHAT_FILE, CHAT_REPO, PIPELINE_REPO, seed_demo_hub
from tests.support.gguf_builder import SCRIPTED_REPLY
from tests.support.hub_server import HubServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def pulled_folder(cli: Cli, endpoint: str, repo_id: str) -> Path:
    result = cli.run("--endpoint", endpoint, "pull", repo_id, "--json")
    assert result.returncode == 0, result
    done = json.loads(result.stdout.strip().splitlines()[-1])
    return Path(done["path"])


def test_the_runnable_models_download_chat_and_generate(
    cli: Cli, hub_server: HubServer, tmp_path: Path
) -> None:
    demo = seed_demo_hub(hub_server, runnable=tmp_path / "demo-models")
    assert demo.runnable is not None
    assert {CHAT_REPO, PIPELINE_REPO} <= set(demo.all())

    chat_folder = pulled_folder(cli, hub_server.url, CHAT_REPO)
    reply = cli.run("chat", str(chat_folder / CHAT_FILE), "--prompt", "Hello", "--seed", "1")
    assert reply.returncode == 0, reply
    assert reply.stdout == SCRIPTED_REPLY + "\n"
    assert "above this model's maximum" not in reply.stderr  # trained for the default context

    pipeline = pulled_folder(cli, hub_server.url, PIPELINE_REPO)
    # Every component in safetensors: nothing a download would have to refuse as a pickle.
    weights = {path.relative_to(pipeline).as_posix() for path in pipeline.rglob("*.*")}
    assert "model_index.json" in weights
    for component in ("unet", "vae", "text_encoder"):
        assert any(name.startswith(f"{component}/") and name.endswith(".safetensors")
                   for name in weights), component  # fmt: skip
    assert not [name for name in weights if name.endswith((".bin", ".ckpt", ".pt"))]
    out = tmp_path / "made.png"
    image = cli.run(
        "image", str(pipeline), "--prompt", "a lighthouse", "--steps", "2", "--size", "64x64",
        "--seed", "5", "--out", str(out), "--json",
    )  # fmt: skip
    assert image.returncode == 0, image
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_demo_hub_module_builds_nothing_unless_asked(hub_server: HubServer) -> None:
    demo = seed_demo_hub(hub_server)
    assert demo.runnable is None
    assert CHAT_REPO not in demo.all() and PIPELINE_REPO not in demo.all()
    # Importing it imports neither torch nor the GGUF writer (a fresh process tells).
    check = (
        "import sys, tests.support.demo_hub\n"
        "print(sorted({'torch', 'diffusers', 'gguf'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
