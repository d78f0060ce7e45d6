"""The fake Hub speaks the protocol the real `huggingface_hub` client expects.

Every test drives the real client (or, for raw protocol details, `http.client`) against a
`HubServer` on 127.0.0.1; nothing in huggingface_hub is mocked.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx2
import pytest
from huggingface_hub import HfApi, ModelCard, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.support.demo_hub import seed_demo_hub
from tests.support.hub_server import (
    Answer,
    DropAfter,
    Fault,
    FlipByte,
    HubServer,
    Lies,
    MalformedJson,
    Oversize,
    Refuse,
    Stall,
    Status,
    git_blob_sha1,
)

GGUF = b"GGUF" + bytes(range(256)) * 4  # LFS by suffix
CONFIG = b'{"architectures": ["LlamaForCausalLM"]}'  # a regular git file
CARD = """---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [llama, chat]
---
# Tiny Llama
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw_request(
    url: str, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request with http.client: no redirects followed, headers seen exactly as sent."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


@pytest.fixture
def api(hub_server: HubServer) -> HfApi:
    return HfApi(endpoint=hub_server.url)


# --- listing -----------------------------------------------------------------------------------


def test_list_models_follows_absolute_link_headers_across_pages(
    hub_server: HubServer, api: HfApi
) -> None:
    hub_server.page_size = 3
    ids = [f"org/model-{i}" for i in range(8)]
    for repo_id in ids:
        hub_server.add_repo(repo_id)

    assert [m.id for m in api.list_models()] == ids

    pages = hub_server.requests_to(r"^/api/models$")
    assert [p.query.get("cursor") for p in pages] == [None, ["3"], ["6"]]
    response, body = raw_request(hub_server.url, "GET", "/api/models?search=model")
    assert response.status == 200
    assert len(json.loads(body)) == 3
    assert response.headers["Link"] == (
        f'<{hub_server.url}/api/models?search=model&cursor=3>; rel="next"'
    )


def test_list_models_searches_filters_and_sorts(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("Meta/Llama-Chat", card=CARD, downloads=10, likes=300)
    hub_server.add_repo(
        "acme/llama-GGUF", {"m.Q4_K_M.gguf": GGUF}, pipeline_tag="text-generation", downloads=900
    )
    hub_server.add_repo(
        "acme/sd-tiny",
        card="---\nlicense: creativeml-openrail-m\n---\n",
        library_name="diffusers",
        pipeline_tag="text-to-image",
        downloads=50,
        likes=5,
        last_modified=datetime(2020, 1, 1, tzinfo=UTC),
    )

    assert [m.id for m in api.list_models(search="LLAMA")] == ["Meta/Llama-Chat", "acme/llama-GGUF"]
    assert [m.id for m in api.list_models(author="acme")] == ["acme/llama-GGUF", "acme/sd-tiny"]
    assert [m.id for m in api.list_models(filter="gguf")] == ["acme/llama-GGUF"]
    assert [m.id for m in api.list_models(filter=["license:apache-2.0", "chat"])] == [
        "Meta/Llama-Chat"
    ]
    assert [m.id for m in api.list_models(filter="diffusers")] == ["acme/sd-tiny"]
    assert [m.id for m in api.list_models(pipeline_tag="text-to-image")] == ["acme/sd-tiny"]
    assert [m.id for m in api.list_models(sort="downloads")] == [
        "acme/llama-GGUF",
        "acme/sd-tiny",
        "Meta/Llama-Chat",
    ]
    assert next(m.id for m in api.list_models(sort="likes")) == "Meta/Llama-Chat"
    assert [m.id for m in api.list_models(sort="last_modified")][-1] == "acme/sd-tiny"

    (llama,) = api.list_models(search="Llama-Chat", cardData=True, full=True)
    assert llama.card_data is not None and llama.card_data.license == "apache-2.0"
    assert llama.library_name == "transformers"
    assert llama.pipeline_tag == "text-generation"
    assert {"llama", "chat", "transformers", "license:apache-2.0"} <= set(llama.tags or [])
    assert [s.rfilename for s in llama.siblings or []] == ["README.md"]
    (plain,) = api.list_models(search="Llama-Chat")
    assert plain.card_data is None and plain.siblings is None


def test_listing_thousands_of_repos_pages_lazily(hub_server: HubServer, api: HfApi) -> None:
    for i in range(5000):
        hub_server.add_repo(f"bulk{i % 20}/model-{i:04d}", downloads=i)

    top = list(api.list_models(sort="downloads", limit=5))
    assert [m.id for m in top] == [f"bulk{i % 20}/model-{i:04d}" for i in range(4999, 4994, -1)]
    assert len(hub_server.requests_to(r"^/api/models$")) == 1


# --- model info and trees ----------------------------------------------------------------------


def test_model_info_reports_sizes_blob_ids_and_lfs_sha256(
    hub_server: HubServer, api: HfApi
) -> None:
    when = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    sha = hub_server.add_repo(
        "org/tiny", {"model.gguf": GGUF, "config.json": CONFIG}, card=CARD, last_modified=when
    )

    info = api.model_info("org/tiny", files_metadata=True)

    assert info.sha == sha and len(sha) == 40
    assert info.last_modified == when
    assert info.author == "org"
    assert info.gated is False
    assert info.card_data is not None and info.card_data.tags == ["llama", "chat"]
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == {"README.md", "config.json", "model.gguf"}
    gguf, config = siblings["model.gguf"], siblings["config.json"]
    assert gguf.size == len(GGUF)
    assert gguf.lfs is not None and gguf.lfs.sha256 == sha256(GGUF) and gguf.lfs.size == len(GGUF)
    assert config.lfs is None and config.blob_id == git_blob_sha1(CONFIG)
    assert hub_server.requests_to(r"^/api/models/org/tiny$")[0].query == {"blobs": ["true"]}


def test_model_info_by_revision_and_unknown_revision(hub_server: HubServer, api: HfApi) -> None:
    first = hub_server.add_repo("org/tiny", {"config.json": b"{}"})
    second = hub_server.add_repo("org/tiny", {"config.json": CONFIG})

    assert second != first
    assert api.model_info("org/tiny").sha == second
    assert api.model_info("org/tiny", revision=first).sha == first
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/tiny", revision="0" * 40)


def test_broken_card_yaml_omits_card_data(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/broken", card="---\nlicense: [unclosed\n---\n# Body\n")

    info = api.model_info("org/broken")

    assert info.card_data is None
    assert [s.rfilename for s in info.siblings or []] == ["README.md"]
    assert not any(t.startswith("license:") for t in info.tags or [])


def test_unknown_repo_raises_repository_not_found(hub_server: HubServer, api: HfApi) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/missing", "config.json", endpoint=hub_server.url)
    response, body = raw_request(hub_server.url, "GET", "/api/models/org/missing")
    assert response.status == 404
    assert response.headers["X-Error-Code"] == "RepoNotFound"
    assert "org/missing" in json.loads(body)["error"]


def test_list_repo_tree_recursive_and_paged(hub_server: HubServer, api: HfApi) -> None:
    hub_server.tree_page_size = 2
    hub_server.add_repo(
        "org/pipe",
        {
            "model_index.json": b"{}",
            "unet/config.json": b"{}",
            "unet/diffusion_pytorch_model.safetensors": b"st" * 10,
            "vae/decoder/weights.bin": b"w" * 7,
        },
    )

    entries = {e.path: e for e in api.list_repo_tree("org/pipe", recursive=True)}

    assert set(entries) == {
        "model_index.json",
        "unet",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae",
        "vae/decoder",
        "vae/decoder/weights.bin",
    }
    weights = entries["unet/diffusion_pytorch_model.safetensors"]
    assert getattr(weights, "lfs", None) is not None
    assert weights.lfs.sha256 == sha256(b"st" * 10)  # type: ignore[union-attr]
    assert len(hub_server.requests_to(r"/tree/main$")) == 4  # 7 entries, 2 per page
    top = [e.path for e in api.list_repo_tree("org/pipe")]
    assert top == ["model_index.json", "unet", "vae"]
    nested = [e.path for e in api.list_repo_tree("org/pipe", path_in_repo="vae/decoder")]
    assert nested == ["vae/decoder/weights.bin"]
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree("org/pipe", path_in_repo="nope"))


# --- downloads -----------------------------------------------------------------------------------


def test_download_regular_file_from_the_hub_origin(hub_server: HubServer) -> None:
    sha = hub_server.add_repo("org/tiny", {"config.json": CONFIG})

    path = hf_hub_download("org/tiny", "config.json", endpoint=hub_server.url)

    assert Path(path).read_bytes() == CONFIG
    assert f"/snapshots/{sha}/" in Path(path).as_posix()
    assert [(r.origin, r.method, r.status) for r in hub_server.requests] == [
        ("hub", "HEAD", 200),
        ("hub", "GET", 200),
    ]


def test_download_lfs_file_via_cdn_redirect_without_token(hub_server: HubServer) -> None:
    hub_server.add_repo("org/tiny", {"model.gguf": GGUF})

    path = hf_hub_download("org/tiny", "model.gguf", endpoint=hub_server.url, token="hf_secret")

    assert Path(path).read_bytes() == GGUF
    (head,) = hub_server.requests_to(r"/resolve/main/model\.gguf$", method="HEAD")
    assert head.status == 302 and head.authorization == "Bearer hf_secret"
    (cdn,) = [r for r in hub_server.requests if r.origin == "cdn"]
    assert cdn.path == f"/lfs/{sha256(GGUF)}/model.gguf"
    assert cdn.authorization is None


def test_resolve_headers_match_the_hub(hub_server: HubServer) -> None:
    sha = hub_server.add_repo("org/tiny", {"model.gguf": GGUF, "config.json": CONFIG})

    lfs, _ = raw_request(hub_server.url, "HEAD", "/org/tiny/resolve/main/model.gguf")
    assert lfs.status == 302
    assert lfs.headers["X-Repo-Commit"] == sha
    assert lfs.headers["X-Linked-Etag"] == f'"{sha256(GGUF)}"'
    assert lfs.headers["X-Linked-Size"] == str(len(GGUF))
    assert lfs.headers["Location"].startswith(hub_server.cdn_url + "/")
    assert hub_server.cdn_url != hub_server.url
    git, _ = raw_request(hub_server.url, "HEAD", f"/org/tiny/resolve/{sha}/config.json")
    assert git.status == 200
    assert git.headers["ETag"] == f'"{git_blob_sha1(CONFIG)}"'
    assert git.headers["Content-Length"] == str(len(CONFIG))
    missing, _ = raw_request(hub_server.url, "HEAD", "/org/tiny/resolve/main/nope.txt")
    assert (missing.status, missing.headers["X-Error-Code"]) == (404, "EntryNotFound")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/tiny", "nope.txt", endpoint=hub_server.url)


def test_range_requests_get_206_with_content_range(hub_server: HubServer) -> None:
    hub_server.add_repo("org/tiny", {"model.gguf": GGUF, "config.json": CONFIG})
    cdn_path = f"/lfs/{sha256(GGUF)}/model.gguf"
    size = len(GGUF)

    middle, body = raw_request(hub_server.cdn_url, "GET", cdn_path, {"Range": "bytes=2-5"})
    assert (middle.status, body) == (206, GGUF[2:6])
    assert middle.headers["Content-Range"] == f"bytes 2-5/{size}"
    tail, body = raw_request(hub_server.cdn_url, "GET", cdn_path, {"Range": "bytes=1000-"})
    assert (tail.status, body) == (206, GGUF[1000:])
    suffix, body = raw_request(hub_server.cdn_url, "GET", cdn_path, {"Range": "bytes=-4"})
    assert (suffix.status, body) == (206, GGUF[-4:])
    past_end, _ = raw_request(hub_server.cdn_url, "GET", cdn_path, {"Range": f"bytes={size}-"})
    assert (past_end.status, past_end.headers["Content-Range"]) == (416, f"bytes */{size}")
    git, body = raw_request(
        hub_server.url, "GET", "/org/tiny/resolve/main/config.json", {"Range": "bytes=0-0"}
    )
    assert (git.status, body) == (206, CONFIG[:1])


def test_snapshot_download_in_parallel_and_model_card(hub_server: HubServer) -> None:
    shards = {f"shard-{i}.safetensors": bytes([i]) * 5000 for i in range(6)}
    files = {**shards, "config.json": CONFIG, "model.gguf": GGUF}
    sha = hub_server.add_repo("org/tiny", files, card=CARD)

    folder = Path(
        snapshot_download(
            "org/tiny", allow_patterns=["*.json", "*.safetensors"], endpoint=hub_server.url
        )
    )
    assert folder.name == sha
    assert sorted(p.name for p in folder.iterdir()) == sorted([*shards, "config.json"])
    assert all((folder / name).read_bytes() == data for name, data in shards.items())

    readme = hf_hub_download("org/tiny", "README.md", endpoint=hub_server.url)
    card = ModelCard.load(Path(readme))  # ModelCard.load(repo_id) has no `endpoint`
    assert card.data.license == "apache-2.0"
    assert card.text.strip() == "# Tiny Llama"


def test_unicode_repo_ids_and_file_names(hub_server: HubServer, api: HfApi) -> None:
    name = "modèle-français.gguf"
    hub_server.add_repo("org/tiny", {name: GGUF})
    hub_server.add_repo("équipe/modèle", {"config.json": CONFIG})

    path = hf_hub_download("org/tiny", name, endpoint=hub_server.url)
    assert Path(path).read_bytes() == GGUF
    # The client refuses non-ASCII repo ids, so check the server with percent-encoded paths.
    info, body = raw_request(hub_server.url, "GET", f"/api/models/{quote('équipe/modèle')}")
    assert (info.status, json.loads(body)["id"]) == (200, "équipe/modèle")
    file, body = raw_request(
        hub_server.url, "GET", f"/{quote('équipe/modèle')}/resolve/main/config.json"
    )
    assert (file.status, body) == (200, CONFIG)


# --- gated repos -------------------------------------------------------------------------------


def test_gated_repo_needs_a_granted_token_for_files_only(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("meta/gated", {"config.json": CONFIG}, gated="manual")
    hub_server.grant("meta/gated", "hf_granted")

    assert api.model_info("meta/gated", token=False).gated == "manual"  # metadata is public
    assert [e.path for e in api.list_repo_tree("meta/gated", token=False)] == ["config.json"]
    with pytest.raises(GatedRepoError):
        hf_hub_download("meta/gated", "config.json", endpoint=hub_server.url, token=False)
    with pytest.raises(GatedRepoError):
        hf_hub_download("meta/gated", "config.json", endpoint=hub_server.url, token="hf_other")
    with pytest.raises(GatedRepoError):
        api.auth_check("meta/gated", token="hf_other")

    api.auth_check("meta/gated", token="hf_granted")
    path = hf_hub_download("meta/gated", "config.json", endpoint=hub_server.url, token="hf_granted")

    assert Path(path).read_bytes() == CONFIG
    statuses = [r.status for r in hub_server.requests_to(r"/resolve/", method="HEAD")]
    assert statuses == [401, 403, 200]


# --- faults --------------------------------------------------------------------------------------


def test_listing_retries_a_500_once(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/tiny")
    hub_server.inject(Fault(Status(500), path=r"^/api/models$"))

    assert [m.id for m in api.list_models()] == ["org/tiny"]
    assert [r.status for r in hub_server.requests_to(r"^/api/models$")] == [500, 200]


def test_429_carries_retry_after_and_the_listing_recovers(
    hub_server: HubServer, api: HfApi
) -> None:
    hub_server.add_repo("org/tiny")
    hub_server.inject(Fault(Status(429, retry_after=7), path=r"^/api/models$", times=1))
    response, _ = raw_request(hub_server.url, "GET", "/api/models")
    assert (response.status, response.headers["Retry-After"]) == (429, "7")

    hub_server.inject(Fault(Status(429, retry_after=0), path=r"^/api/models$"))
    assert [m.id for m in api.list_models()] == ["org/tiny"]
    assert [r.status for r in hub_server.requests_to(r"^/api/models$")] == [429, 429, 200]


def test_refuse_closes_without_answer(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/tiny")
    hub_server.inject(Fault(Refuse(), path=r"^/api/models/org/tiny$", times=None))

    with pytest.raises(httpx2.TransportError):
        api.model_info("org/tiny")  # model_info does not retry
    hub_server.clear_faults()
    assert api.model_info("org/tiny").id == "org/tiny"
    refused = hub_server.requests_to(r"^/api/models/org/tiny$")
    assert [r.status for r in refused] == [None, 200]
    assert refused[0].fault == Refuse()


def test_refused_listing_is_retried(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/tiny")
    hub_server.inject(Fault(Refuse(), path=r"^/api/models$", method="GET"))

    assert [m.id for m in api.list_models()] == ["org/tiny"]
    assert [r.status for r in hub_server.requests_to(r"^/api/models$")] == [None, 200]


def test_malformed_json_fails_the_call(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/tiny")
    hub_server.inject(Fault(MalformedJson(), path=r"^/api/models"))

    with pytest.raises(ValueError, match=r"Expecting|Unterminated|JSON"):
        list(api.list_models())
    assert [m.id for m in api.list_models()] == ["org/tiny"]  # only once


def test_stall_delays_the_answer(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/tiny")
    hub_server.inject(Fault(Stall(0.3), path=r"^/api/models/org/tiny$"))

    started = time.monotonic()
    assert api.model_info("org/tiny").id == "org/tiny"
    assert time.monotonic() - started >= 0.3


def test_drop_after_makes_the_client_resume_with_range(hub_server: HubServer) -> None:
    # The client keeps only whole 10 MiB chunks of a broken body, so drop past the first one.
    big = bytes(range(256)) * (48 * 1024)  # 12 MiB
    hub_server.add_repo("org/big", {"model.gguf": big})
    hub_server.inject(Fault(DropAfter(11 << 20), path=r"^/lfs/", method="GET"))

    path = hf_hub_download("org/big", "model.gguf", endpoint=hub_server.url)

    assert Path(path).read_bytes() == big
    first, resumed = [r for r in hub_server.requests if r.origin == "cdn"]
    assert (first.range, first.status, first.fault) == (None, 200, DropAfter(11 << 20))
    assert resumed.status == 206 and resumed.fault is None
    assert resumed.range is not None and resumed.range.startswith("bytes=")
    assert 0 < int(resumed.range.removeprefix("bytes=").rstrip("-")) <= 11 << 20


def test_flip_byte_corrupts_the_download_silently(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/tiny", {"model.gguf": GGUF})
    hub_server.inject(Fault(FlipByte(10), path=r"model\.gguf$"))

    path = hf_hub_download("org/tiny", "model.gguf", endpoint=hub_server.url)

    data = Path(path).read_bytes()
    (sibling,) = api.model_info("org/tiny", files_metadata=True).siblings or []
    assert sibling.lfs is not None
    assert sha256(data) != sibling.lfs.sha256
    assert [i for i, (a, b) in enumerate(zip(data, GGUF, strict=True)) if a != b] == [10]


def test_fault_validation_and_stop_are_safe(tmp_path: Path) -> None:
    server = HubServer(tmp_path)
    with pytest.raises(ValueError):
        server.inject(Fault(Status(500), times=0))
    with pytest.raises(ValueError):
        Stall(3600)
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        response, _ = raw_request(server.url, "GET", "/api/models")
        assert response.status == 200
    server.stop()  # a second stop is harmless


# --- the demo hub --------------------------------------------------------------------------------


def test_demo_hub_serves_the_real_client(hub_server: HubServer, api: HfApi) -> None:
    demo = seed_demo_hub(hub_server, filler_repos=30)

    assert len(list(api.list_models())) == len(demo.all()) == 36
    assert {demo.gguf, demo.gated} <= {m.id for m in api.list_models(search="llama")}
    assert demo.diffusers in {m.id for m in api.list_models(filter="diffusers")}
    gguf_files = [s.rfilename for s in api.model_info(demo.gguf).siblings or []]
    assert "Pocket-Llama-3B-Instruct-Q8_0-00002-of-00002.gguf" in gguf_files
    q4 = hf_hub_download(demo.gguf, "Pocket-Llama-3B-Instruct-Q4_K_M.gguf", endpoint=hub_server.url)
    assert Path(q4).read_bytes()[:4] == b"GGUF"
    with pytest.raises(GatedRepoError):
        hf_hub_download(demo.gated, "config.json", endpoint=hub_server.url, token=False)
    hf_hub_download(demo.gated, "LICENSE", endpoint=hub_server.url, token=demo.granted_token)
    other = api.model_info(demo.other_license).card_data
    assert other is not None and other.license_name == "demo-research-license"
    assert api.model_info(demo.broken_card).card_data is None
    siblings = api.model_info(demo.diffusers, files_metadata=True).siblings or []
    sizes = {s.rfilename: s.size or 0 for s in siblings}
    unet = "unet/diffusion_pytorch_model"
    assert 0 < sizes[f"{unet}.fp16.safetensors"] < sizes[f"{unet}.safetensors"]


# --- a hostile hub: lies ---------------------------------------------------------------------


def test_lies_list_names_the_hub_would_never_store(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/evil", {"model.gguf": GGUF, "config.json": CONFIG})
    names = {"model.gguf": "../../../../.config/autostart/x.desktop", "config.json": "C:\\x\0y"}
    with pytest.raises(ValueError, match="not a valid path"):
        hub_server.add_repo("org/other", {"../x": b""})  # it never stores such a name

    hub_server.lie("org/evil", Lies(names=names))

    info = api.model_info("org/evil", files_metadata=True)
    assert {s.rfilename for s in info.siblings or []} == set(names.values())
    tree = api.list_repo_tree("org/evil", recursive=True)
    assert {entry.path for entry in tree} == set(names.values())
    # The real client asks for the name as its URL normalizes it; the hub serves it there.
    response = httpx2.get(
        f"{hub_server.url}/org/evil/resolve/main/../../../../.config/autostart/x.desktop",
        follow_redirects=True,
    )
    assert response.content == GGUF
    # huggingface_hub refuses such a name itself (its own path check).
    with pytest.raises(ValueError, match="Invalid filename"):
        hf_hub_download("org/evil", names["model.gguf"], endpoint=hub_server.url)


def test_lies_in_json_fields_and_resolve_headers(hub_server: HubServer, api: HfApi) -> None:
    sha = hub_server.add_repo("org/evil", {"model.gguf": GGUF, "config.json": CONFIG})
    lies = Lies(
        repo_id="org/../../x",
        sha="../../x",
        repo_commit="0" * 40,
        etag="e" * 64,
        fields={
            "config.json": {"size": -1, "blobId": "../blob"},
            "model.gguf": {"lfs": {"sha256": "A" * 64, "size": 1 << 62, "pointerSize": 1}},
        },
        extra=({"rfilename": "config.json", "blobId": "1" * 40, "size": 5},),
    )
    hub_server.lie("org/evil", lies)

    info = api.model_info("org/evil", files_metadata=True)
    assert (info.id, info.sha) == ("org/../../x", "../../x")
    listed = [(s.rfilename, s.size, s.blob_id) for s in info.siblings or []]
    assert listed.count(("config.json", -1, "../blob")) == 1
    assert listed.count(("config.json", 5, "1" * 40)) == 1  # listed twice
    gguf = next(s for s in info.siblings or [] if s.rfilename == "model.gguf")
    assert gguf.lfs is not None and gguf.lfs.sha256 == "A" * 64
    entries = {(e.path, getattr(e, "blob_id", None)) for e in api.list_repo_tree("org/evil")}
    assert ("config.json", "../blob") in entries and ("config.json", "1" * 40) in entries
    head, _ = raw_request(hub_server.url, "HEAD", f"/org/evil/resolve/{sha}/model.gguf")
    assert head.headers["X-Repo-Commit"] == "0" * 40
    assert head.headers["X-Linked-Etag"] == f'"{"e" * 64}"'

    hub_server.lie("org/evil", None)  # the truth again
    assert api.model_info("org/evil").sha == sha
    with pytest.raises(KeyError):
        hub_server.lie("org/evil", Lies(names={"nope.txt": "x"}))


@pytest.mark.parametrize("content_length", [True, False])
def test_lies_send_bodies_longer_than_declared(hub_server: HubServer, content_length: bool) -> None:
    hub_server.add_repo("org/evil", {"model.gguf": GGUF, "config.json": CONFIG})
    extra = Oversize(100_000, content_length=content_length)
    hub_server.lie("org/evil", Lies(oversize={"model.gguf": extra, "config.json": extra}))

    for path, data in (("config.json", CONFIG), ("model.gguf", GGUF)):
        response = httpx2.get(
            f"{hub_server.url}/org/evil/resolve/main/{path}", follow_redirects=True
        )
        assert response.content == data + bytes(100_000)
        assert ("content-length" in response.headers) is content_length
    head, _ = raw_request(hub_server.url, "HEAD", "/org/evil/resolve/main/config.json")
    assert head.headers["Content-Length"] == str(len(CONFIG))  # the HEAD tells the truth


def test_lies_redirect_anywhere_and_pad_json(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/evil", {"model.gguf": GGUF})
    hub_server.lie(
        "org/evil",
        Lies(redirects={"model.gguf": "http://127.0.0.1:9/elsewhere"}, json_padding=5 << 20),
    )

    head, _ = raw_request(hub_server.url, "HEAD", "/org/evil/resolve/main/model.gguf")
    assert (head.status, head.headers["Location"]) == (302, "http://127.0.0.1:9/elsewhere")
    _, body = raw_request(hub_server.url, "GET", "/api/models/org/evil")
    assert len(body) > 5 << 20 and json.loads(body)["id"] == "org/evil"
    assert api.model_info("org/evil").id == "org/evil"


def test_answer_fault_serves_any_json_or_bytes(hub_server: HubServer, api: HfApi) -> None:
    hub_server.add_repo("org/tiny", {"model.gguf": GGUF})
    hub_server.inject(Fault(Answer([1, "two", None]), path=r"^/api/models/org/tiny$"))
    hub_server.inject(Fault(Answer(b"\xff\xfe", status=201), path=r"^/api/models/org/tiny$"))

    first, body = raw_request(hub_server.url, "GET", "/api/models/org/tiny")
    assert (first.status, json.loads(body)) == (200, [1, "two", None])
    second, body = raw_request(hub_server.url, "GET", "/api/models/org/tiny")
    assert (second.status, body) == (201, b"\xff\xfe")
    assert api.model_info("org/tiny").id == "org/tiny"  # the faults are spent
