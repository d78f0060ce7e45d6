"""`modeldeck chat --json-schema FILE`: a child process, a real engine, a tiny scripted GGUF
that answers "Quick fox." to everything unless a grammar says otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.conftest import Cli
from tests.support.gguf_builder import SCRIPTED_REPLY, write_scripted_gguf

SCHEMA = {
    "type": "object",
    "properties": {
        "mood": {"enum": ["calm", "busy"]},
        "ready": {"type": "boolean"},
    },
    "required": ["mood", "ready"],
}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_scripted_gguf(tmp_path / "models" / "Scripted-Q8_0.gguf", context_length=2048)


def test_the_reply_is_json_valid_against_the_schema(cli: Cli, model: Path, tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    result = cli.run(
        "chat", str(model), "--prompt", "How are you?", "--json-schema", str(schema),
        "--seed", "5", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result
    document = json.loads(result.stdout)
    reply = json.loads(document["text"])
    assert set(reply) == {"mood", "ready"}
    assert reply["mood"] in ("calm", "busy") and isinstance(reply["ready"], bool)
    assert "--json-schema" in document["llama_cpp_command"]
    plain = cli.run("chat", str(model), "--prompt", "How are you?")
    assert plain.stdout == SCRIPTED_REPLY + "\n"  # the schema made the difference


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "Cannot read the JSON schema"),
        ("{not json", "not valid JSON"),
        ('{"type": "foo"}', "not supported"),
    ],
)
def test_a_bad_schema_file_is_one_line_of_error(
    cli: Cli, model: Path, tmp_path: Path, content: str | None, says: str
) -> None:
    schema = tmp_path / "schema.json"
    if content is not None:
        schema.write_text(content, encoding="utf-8")
    result = cli.run("chat", str(model), "--prompt", "Hi", "--json-schema", str(schema))
    assert result.returncode == 2, result
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
