"""`modeldeck search|info` run as a child process against the fake hub."""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest

from app import __version__
from tests.core.conftest import SECRET_TOKEN, Cli, CliResult
from tests.support.hub_server import Fault, HubServer, Status

GGUF = b"GGUF" + bytes(range(256)) * 16


@pytest.fixture
def models(hub_server: HubServer) -> HubServer:
    hub_server.add_repo(
        "org/tiny-gguf",
        {
            "tiny-Q4_K_M.gguf": GGUF,
            "tiny-Q8_0.gguf": GGUF + b"8",
            "config.json": b"{}",
            "LICENSE": b"Apache",
        },
        card="---\nlicense: apache-2.0\nbase_model: org/base\n---\n# Tiny\n",
        pipeline_tag="text-generation",
        library_name="gguf",
        downloads=300,
        likes=7,
        last_modified=datetime(2024, 4, 5, tzinfo=UTC),
    )
    hub_server.add_repo(
        "org/sd-nc",
        {"model_index.json": b"{}", "unet/diffusion_pytorch_model.safetensors": b"\0" * 8},
        card="---\nlicense: cc-by-nc-4.0\n---\n",
        pipeline_tag="text-to-image",
        library_name="diffusers",
        downloads=200,
        likes=70,
    )
    hub_server.add_repo(
        "meta/gated-llm",
        {"model-Q4_K_M.gguf": GGUF},
        card="---\nlicense: llama3\n---\n",
        pipeline_tag="text-generation",
        gated="manual",
        downloads=100,
    )
    return hub_server


def assert_one_line_failure(result: CliResult, status: int) -> str:
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("modeldeck: ")
    return lines[0]


def json_output(result: CliResult) -> Any:
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_version(cli: Cli) -> None:
    result = cli.run("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"modeldeck {__version__}"


def test_search_table(cli: Cli, models: HubServer) -> None:
    result = cli.run("--endpoint", models.url, "search")

    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "TASK", "DOWNLOADS", "LIKES", "LICENSE", "UPDATED"]
    assert [line.split()[0] for line in lines[1:]] == [
        "org/tiny-gguf",
        "org/sd-nc",
        "meta/gated-llm",
    ]
    assert lines[1].split() == [
        "org/tiny-gguf", "text-generation", "300", "7", "apache-2.0", "2024-04-05"
    ]  # fmt: skip
    assert result.stderr == ""


def test_search_with_no_match(cli: Cli, models: HubServer) -> None:
    result = cli.run("--endpoint", models.url, "search", "nothing-matches-this")

    assert result.returncode == 0
    assert result.stdout == "No models match.\n"


def test_search_json(cli: Cli, models: HubServer) -> None:
    items = json_output(cli.run("--endpoint", models.url, "search", "--json"))

    assert isinstance(items, list)
    assert [item["id"] for item in items] == ["org/tiny-gguf", "org/sd-nc", "meta/gated-llm"]
    first = items[0]
    assert first == {
        **first,
        "id": "org/tiny-gguf",
        "task": "text-generation",
        "library": "gguf",
        "downloads": 300,
        "likes": 7,
        "license": "apache-2.0",
        "gated": "open",
    }
    assert datetime.fromisoformat(first["last_modified"]) == datetime(2024, 4, 5, tzinfo=UTC)
    assert items[2]["gated"] == "manual"


def test_search_filters_sort_and_limit_reach_the_hub(cli: Cli, models: HubServer) -> None:
    items = json_output(
        cli.run(
            "--endpoint", models.url, "search", "tiny", "--task", "text-generation",
            "--library", "gguf", "--license", "apache-2.0", "--author", "org",
            "--sort", "likes", "--json",
        )
    )  # fmt: skip

    assert [item["id"] for item in items] == ["org/tiny-gguf"]
    (request,) = models.requests_to(r"^/api/models$")
    assert request.query["search"] == ["tiny"]
    assert request.query["pipeline_tag"] == ["text-generation"]
    assert request.query["author"] == ["org"]
    assert sorted(request.query["filter"]) == ["gguf", "license:apache-2.0"]
    assert request.query["sort"] == ["likes"]


def test_search_limit_reads_only_what_it_needs(cli: Cli, hub_server: HubServer) -> None:
    hub_server.page_size = 5
    for number in range(40):
        hub_server.add_repo(f"bulk/m{number:02d}", downloads=number)

    items = json_output(cli.run("--endpoint", hub_server.url, "search", "--limit", "7", "--json"))

    assert [item["id"] for item in items] == [f"bulk/m{n:02d}" for n in range(39, 32, -1)]
    assert len(hub_server.requests_to(r"^/api/models$")) == 2  # 7 results: two pages of five


def test_info_json_of_a_gguf_repo(cli: Cli, models: HubServer) -> None:
    report = json_output(cli.run("--endpoint", models.url, "info", "org/tiny-gguf", "--json"))

    assert report["id"] == "org/tiny-gguf"
    assert report["url"] == f"{models.url}/org/tiny-gguf"
    assert report["gated"] == "open"
    assert report["access"] == "granted"
    assert report["base_models"] == ["org/base"]
    license_ = report["license"]
    assert (license_["id"], license_["category"], license_["commercial_use"]) == (
        "apache-2.0",
        "permissive",
        "yes",
    )
    assert license_["license_file"] == "LICENSE"
    files = {file["path"]: file for file in report["files"]}
    q4 = files["tiny-Q4_K_M.gguf"]
    assert q4["size"] == len(GGUF)
    assert q4["sha256"] == hashlib.sha256(GGUF).hexdigest()
    assert q4["quantization"] == "Q4_K_M"
    assert q4["fit"] == "fits"  # a few kB fits any machine
    assert q4["fit_detail"]
    assert files["tiny-Q8_0.gguf"]["quantization"] == "Q8_0"
    assert files["config.json"]["sha256"] is None  # not in LFS
    assert files["config.json"]["quantization"] is None
    assert files["config.json"]["fit"] is None
    assert report["offline_copy_from"] is None


def test_info_text_and_context(cli: Cli, models: HubServer) -> None:
    result = cli.run("info", "org/sd-nc", "--endpoint", models.url, "--context", "2048")

    assert result.returncode == 0, result
    text = result.stdout
    assert text.startswith(f"org/sd-nc  ({models.url}/org/sd-nc)")
    assert "[non-commercial]" in text
    assert "commercial:  no" in text
    assert "unet/diffusion_pytorch_model.safetensors" in text
    report = json_output(cli.run("info", "org/sd-nc", "--endpoint", models.url, "--json"))
    assert report["diffusers"]["safetensors"] is True


def test_info_of_a_gated_repo_without_a_token(cli: Cli, models: HubServer) -> None:
    report = json_output(cli.run("--endpoint", models.url, "info", "meta/gated-llm", "--json"))

    assert report["gated"] == "manual"
    assert report["access"] == "no-token"
    assert report["license"]["category"] == "use-restricted"
    assert report["license"]["commercial_use"] == "conditional"
    assert models.requests_to(r"^/api/models/meta/gated-llm/auth-check$")


def test_info_text_says_access_in_words_and_groups_split_parts(cli: Cli, models: HubServer) -> None:
    gated = cli.run("--endpoint", models.url, "info", "meta/gated-llm")
    assert gated.returncode == 0, gated
    assert "download:    no access (token needed)" in gated.stdout
    assert "gated:       yes (the authors review each request)" in gated.stdout
    assert "no-token" not in gated.stdout and "manual" not in gated.stdout

    models.add_repo(
        "org/split-gguf",
        {
            "big-Q4_0-00001-of-00003.gguf": GGUF + b"1",
            "big-Q4_0-00002-of-00003.gguf": GGUF + b"2",
            "big-Q4_0-00003-of-00003.gguf": GGUF + b"3",
            "small-Q8_0.gguf": GGUF,
        },
    )
    text = cli.run("--endpoint", models.url, "info", "org/split-gguf").stdout
    rows = text.split("FILE", 1)[1].splitlines()[1:]
    assert len(rows) == 2, text  # the three parts are one model
    assert rows[1].startswith("big-Q4_0-00001-of-00003.gguf (+2 parts)") or rows[0].startswith(
        "big-Q4_0-00001-of-00003.gguf (+2 parts)"
    )
    assert "00002-of-00003" not in text
    report = json_output(cli.run("--endpoint", models.url, "info", "org/split-gguf", "--json"))
    big = next(model for model in report["gguf_models"] if model["name"] == "big-Q4_0")
    assert len(big["parts"]) == 3 and big["complete"] and big["size"] == 3 * len(GGUF) + 3
    assert len(report["files"]) == 4  # JSON still lists every file


def test_info_of_a_gated_repo_with_a_granted_token(cli: Cli, models: HubServer) -> None:
    models.grant("meta/gated-llm", SECRET_TOKEN)

    result = cli.run(
        "--endpoint", models.url, "info", "meta/gated-llm", "--json",
        env={"HF_TOKEN": SECRET_TOKEN},
    )  # fmt: skip

    assert json_output(result)["access"] == "granted"
    assert SECRET_TOKEN not in result.stdout + result.stderr


def test_info_of_an_older_revision(cli: Cli, models: HubServer) -> None:
    first = models.add_repo("org/evolving", {"v1-Q4_0.gguf": b"one"})
    models.add_repo("org/evolving", {"v2-Q4_0.gguf": b"two"})

    report = json_output(
        cli.run("--endpoint", models.url, "info", "org/evolving", "--revision", first, "--json")
    )

    assert report["sha"] == first
    assert [file["path"] for file in report["files"]] == ["v1-Q4_0.gguf"]


def test_info_offline_shows_the_saved_copy(cli: Cli, models: HubServer) -> None:
    url = models.url
    online = json_output(cli.run("--endpoint", url, "info", "org/tiny-gguf", "--json"))
    models.stop()

    offline = json_output(cli.run("--endpoint", url, "info", "org/tiny-gguf", "--json"))

    assert offline["offline_copy_from"] is not None

    def stable(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in f.items() if k != "fit_detail"} for f in files]  # free RAM

    assert stable(offline["files"]) == stable(online["files"])
    assert offline["license"] == online["license"]
    text = cli.run("--endpoint", url, "info", "org/tiny-gguf")
    assert text.returncode == 0
    assert "offline: showing the copy saved" in text.stdout


# --- failures and exit codes ---------------------------------------------------------------


def test_not_found_exits_3(cli: Cli, models: HubServer) -> None:
    line = assert_one_line_failure(cli.run("--endpoint", models.url, "info", "org/nope"), 3)

    assert "org/nope" in line


def test_unreachable_exits_5(cli: Cli) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"

    for args in (("search", "x"), ("info", "org/model")):
        line = assert_one_line_failure(cli.run("--endpoint", endpoint, *args), 5)
        assert "offline" in line
        assert endpoint in line


def test_server_error_exits_1_without_leaking_the_token(cli: Cli, models: HubServer) -> None:
    echo = f"bad token {SECRET_TOKEN}"
    models.inject(Fault(Status(500, body=echo), path=r"^/api/models/org/tiny-gguf$"))

    result = cli.run(
        "--endpoint", models.url, "info", "org/tiny-gguf", env={"HF_TOKEN": SECRET_TOKEN}
    )

    line = assert_one_line_failure(result, 1)
    assert "500" in line
    assert SECRET_TOKEN not in result.stdout + result.stderr
    assert all(r.authorization == f"Bearer {SECRET_TOKEN}" for r in models.requests_to("/api/"))


@pytest.mark.parametrize(
    "args",
    [
        ("search", "--limit", "0"),
        ("search", "--limit", "many"),
        ("search", "--sort", "random"),
        ("info",),
        ("frobnicate",),
        ("info", "org/x", "--context", "-5"),
        ("--endpoint", "ftp://hub.example", "search"),
        ("search", "--endpoint", "not-a-url"),
    ],
)
def test_bad_arguments_exit_2(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli.run(*args)

    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
    assert result.stdout == ""


def test_endpoint_after_the_command_wins_over_none_before(cli: Cli, models: HubServer) -> None:
    after = json_output(cli.run("search", "--json", "--endpoint", models.url))
    before = json_output(cli.run("--endpoint", models.url, "search", "--json"))

    assert after == before
    assert len(after) == 3


def test_hf_endpoint_environment_is_honoured(cli: Cli, models: HubServer) -> None:
    items = json_output(cli.run("search", "--json", env={"HF_ENDPOINT": models.url}))

    assert items[0]["id"] == "org/tiny-gguf"
    assert models.requests_to(r"^/api/models$")


def test_endpoint_option_beats_hf_endpoint(cli: Cli, models: HubServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    result = cli.run("--endpoint", models.url, "search", "--json", env={"HF_ENDPOINT": dead})

    assert len(json_output(result)) == 3
