"""`modeldeck chat` as a person runs it: a child process, a real engine, a tiny scripted GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.conftest import Cli
from tests.support.gguf_builder import SCRIPTED_REPLY, write_gguf, write_scripted_gguf


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_scripted_gguf(tmp_path / "models" / "Scripted-Q8_0.gguf", context_length=2048)


def test_chat_streams_the_reply_to_stdout(cli: Cli, model: Path) -> None:
    result = cli.run("chat", str(model), "--prompt", "Hello there", "--seed", "7")
    assert result.returncode == 0, result
    assert result.stdout == SCRIPTED_REPLY + "\n"
    assert "tokens/s" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_json_has_the_text_stats_and_a_llama_cpp_command(cli: Cli, model: Path) -> None:
    result = cli.run(
        "chat", str(model), "--prompt", "Hi", "--system", "Be brief.", "--max-tokens", "5",
        "--temperature", "0.2", "--seed", "3", "--ctx", "1024", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result
    document = json.loads(result.stdout)
    assert document["text"] == SCRIPTED_REPLY[:5]
    assert document["stats"]["generated_tokens"] == 5
    assert document["stats"]["finish_reason"] == "length"
    assert document["stats"]["seed"] == 3
    assert document["load"]["context_length"] == 1024
    assert document["load"]["placement"] == "on the CPU"
    assert document["template"] == "the model's template"
    command = document["llama_cpp_command"]
    assert command.startswith("llama-cli -m ") and str(model) in command
    assert "--seed 3" in command and "-n 5" in command and "-c 1024" in command


def test_a_context_above_the_models_maximum_is_clamped_with_a_note(cli: Cli, model: Path) -> None:
    result = cli.run("chat", str(model), "--prompt", "Hi", "--ctx", "65536", "--json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["load"]["context_length"] == 2048
    assert "above this model's maximum of 2,048" in result.stderr


def test_an_imported_model_is_found_by_name(cli: Cli, model: Path) -> None:
    assert cli.run("import", str(model)).returncode == 0
    result = cli.run("chat", "Scripted-Q8_0", "--prompt", "Hi")
    assert result.returncode == 0, result
    assert result.stdout.strip() == SCRIPTED_REPLY


def test_a_model_that_is_not_there_exits_3(cli: Cli) -> None:
    result = cli.run("chat", "nobody/nothing-GGUF:Q4_K_M", "--prompt", "Hi")
    assert result.returncode == 3
    assert "No GGUF model matches" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_truncated_gguf_is_one_line_of_error(cli: Cli, tmp_path: Path) -> None:
    whole = write_gguf(tmp_path / "whole.gguf").read_bytes()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(whole[: len(whole) // 3])
    result = cli.run("chat", str(broken), "--prompt", "Hi")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_prompt_is_a_usage_error(cli: Cli, model: Path) -> None:
    result = cli.run("chat", str(model), "--prompt", "   ")
    assert result.returncode == 2
    assert "empty" in result.stderr
