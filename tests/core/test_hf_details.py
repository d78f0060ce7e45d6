"""One repository through the real client: details with file hashes, cards and text files."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from app.errors import RepoFileNotFoundError, RepoNotFoundError
from app.hub.huggingface import HuggingFaceHub
from app.hub.models import Gating, ModelCard, RepoFile
from tests.support.hub_server import Gated, HubServer, git_blob_sha1, lfs_pointer

GGUF = b"GGUF" + bytes(range(256)) * 4
CONFIG = b'{"architectures": ["LlamaForCausalLM"]}'


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- model_details -----------------------------------------------------------------------------


def test_details_list_files_with_sizes_and_lfs_hashes(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    sha = hub_server.add_repo(
        "org/tiny-gguf",
        {"tiny-Q4_K_M.gguf": GGUF, "config.json": CONFIG, "LICENSE": b"MIT License\n"},
        card="---\nlicense: mit\n---\n# Tiny\n",
        pipeline_tag="text-generation",
        library_name="gguf",
        tags=["chat"],
        downloads=1234,
        likes=56,
        last_modified=datetime(2024, 5, 1, 8, 0, 0, 250_000, tzinfo=UTC),
    )

    details = hub.model_details("org/tiny-gguf")

    assert details.repo_id == "org/tiny-gguf"
    assert details.sha == sha
    assert details.last_modified == datetime(2024, 5, 1, 8, 0, 0, 250_000, tzinfo=UTC)
    assert details.task == "text-generation"
    assert details.library == "gguf"
    assert {"chat", "gguf", "license:mit"} <= set(details.tags)
    assert (details.downloads, details.likes) == (1234, 56)
    assert details.license_id == "mit"
    assert details.gating is Gating.OPEN
    assert details.url == f"{hub_server.url}/org/tiny-gguf"
    assert details.saved_at is None
    files = {file.path: file for file in details.files}
    assert set(files) == {"tiny-Q4_K_M.gguf", "config.json", "LICENSE", "README.md"}
    assert files["tiny-Q4_K_M.gguf"] == RepoFile(
        path="tiny-Q4_K_M.gguf",
        size=len(GGUF),
        sha256=sha256(GGUF),
        blob_id=git_blob_sha1(lfs_pointer(sha256(GGUF), len(GGUF))),
    )
    # A plain git file has a blob id but no sha256 (the hub reports sha256 for LFS files only).
    assert files["config.json"] == RepoFile(
        path="config.json", size=len(CONFIG), sha256=None, blob_id=git_blob_sha1(CONFIG)
    )
    assert details.license_file == files["LICENSE"]
    (request,) = hub_server.requests_to(r"^/api/models/org/tiny-gguf$")
    assert request.query["blobs"] == ["true"]


@pytest.mark.parametrize(
    ("front_matter", "expected"),
    [
        ("base_model: org/base\n", ("org/base",)),
        ("base_model:\n- org/a\n- org/b\n", ("org/a", "org/b")),
        ("license: mit\n", ()),
    ],
)
def test_base_model_may_be_a_string_or_a_list(
    hub_server: HubServer, hub: HuggingFaceHub, front_matter: str, expected: tuple[str, ...]
) -> None:
    hub_server.add_repo("org/derived", card=f"---\n{front_matter}---\n")

    assert hub.model_details("org/derived").base_models == expected


def test_license_other_keeps_the_cards_name_and_link(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    card = "---\nlicense: other\nlicense_name: acme-model-license\nlicense_link: LICENSE.md\n---\n"
    hub_server.add_repo("org/custom", {"LICENSE.md": b"Acme terms"}, card=card)

    details = hub.model_details("org/custom")

    assert details.license_id == "other"
    assert details.license_name == "acme-model-license"
    assert details.license_link == "LICENSE.md"
    assert details.card_data["license_name"] == "acme-model-license"


def test_license_comes_from_the_tag_when_the_card_has_none(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    hub_server.add_repo("org/tagged", tags=["license:Apache-2.0"])

    details = hub.model_details("org/tagged")

    assert details.license_id == "apache-2.0"
    assert details.license_name is None
    assert details.card_data == {}


@pytest.mark.parametrize(
    ("gated", "expected"),
    [(False, Gating.OPEN), ("auto", Gating.AUTO), ("manual", Gating.MANUAL)],
)
def test_gating_is_mapped(
    hub_server: HubServer,
    hub: HuggingFaceHub,
    gated: Gated,
    expected: Gating,
) -> None:
    hub_server.add_repo("org/maybe-gated", {"a.gguf": GGUF}, gated=gated)

    assert hub.model_details("org/maybe-gated").gating is expected


def test_details_of_an_older_revision(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    first = hub_server.add_repo("org/evolving", {"v1.gguf": b"one"}, card="# v1\n")
    second = hub_server.add_repo("org/evolving", {"v2.gguf": b"two"}, card="# v2\n")
    assert first != second

    old = hub.model_details("org/evolving", revision=first)
    new = hub.model_details("org/evolving")

    assert old.sha == first
    assert [f.path for f in old.files] == ["README.md", "v1.gguf"]
    assert new.sha == second
    assert [f.path for f in new.files] == ["README.md", "v2.gguf"]
    assert hub_server.requests_to(rf"^/api/models/org/evolving/revision/{first}$")
    assert hub.model_card("org/evolving", revision=first).body == "# v1\n"
    assert hub.model_card("org/evolving").body == "# v2\n"


def test_unknown_revision_is_not_found_and_named(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    hub_server.add_repo("org/evolving", {"v1.gguf": b"one"})

    with pytest.raises(RepoNotFoundError) as caught:
        hub.model_details("org/evolving", revision="no-such-branch")

    assert caught.value.repo_id == "org/evolving"
    assert "no-such-branch" in str(caught.value)


# --- model_card ------------------------------------------------------------------------------


def test_card_front_matter_is_split_from_the_body(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    hub_server.add_repo(
        "org/carded",
        card="---\nlicense: apache-2.0\ntags:\n- chat\n- gguf\n---\n# Title\n\nBody text.\n",
    )

    card = hub.model_card("org/carded")

    assert card == ModelCard(
        body="# Title\n\nBody text.\n",
        metadata={"license": "apache-2.0", "tags": ["chat", "gguf"]},
    )


def test_missing_readme_is_an_empty_card(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    hub_server.add_repo("org/no-card", {"model.gguf": GGUF})

    card = hub.model_card("org/no-card")

    assert card == ModelCard(body="")
    assert hub_server.requests_to(r"^/org/no-card/resolve/main/README.md$")


def test_broken_yaml_keeps_the_body_and_says_why(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    hub_server.add_repo("org/broken", card="---\nlicense: [mit\ntags: {\n---\n# Still here\n")

    card = hub.model_card("org/broken")

    assert card.body == "# Still here\n"
    assert card.metadata == {}
    assert card.metadata_error is not None
    assert "YAML" in card.metadata_error
    # The hub itself just leaves cardData out: details still load.
    assert hub.model_details("org/broken").card_data == {}


def test_a_one_megabyte_card_arrives_whole(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    paragraph = "Lorem ipsum dolor sit amet, ünïcödé 日本語 text.\n\n"
    body = "# Big\n\n" + paragraph * (1_100_000 // len(paragraph))
    hub_server.add_repo("org/big-card", card=f"---\nlicense: mit\n---\n{body}")

    card = hub.model_card("org/big-card")

    assert card.body == body
    assert card.metadata == {"license": "mit"}
    # Over 1 MiB the hub keeps README.md in LFS: it came from the CDN origin.
    assert [r.origin for r in hub_server.requests_to(r"README\.md$", "GET")][-1] == "cdn"


# --- read_text_file --------------------------------------------------------------------------


def test_read_text_file_reads_and_truncates(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    text = "Permission is hereby granted — free of charge.\n" * 100
    hub_server.add_repo("org/licensed", {"LICENSE": text.encode()})

    assert hub.read_text_file("org/licensed", "LICENSE") == text
    assert hub.read_text_file("org/licensed", "LICENSE", max_bytes=10) == text[:10]


def test_read_text_file_replaces_undecodable_bytes(
    hub_server: HubServer, hub: HuggingFaceHub
) -> None:
    hub_server.add_repo("org/latin1", {"NOTES.txt": "café".encode("latin-1")})

    assert hub.read_text_file("org/latin1", "NOTES.txt") == "caf\ufffd"


def test_read_text_file_of_a_missing_file(hub_server: HubServer, hub: HuggingFaceHub) -> None:
    hub_server.add_repo("org/licensed", {"LICENSE": b"MIT"})

    with pytest.raises(RepoFileNotFoundError) as caught:
        hub.read_text_file("org/licensed", "NOTICE")

    assert isinstance(caught.value, LookupError)
    assert (caught.value.repo_id, caught.value.path) == ("org/licensed", "NOTICE")
