"""Civitai as a `HubProvider`: search, details, card and permissions in the app's own types.

Ids: a model is `civitai:ID`; one of its versions `civitai:ID@VERSION` (or `revision=`
VERSION); a bare number is taken as a model id. Results and details carry `civitai:ID/Name`
(the name follows a "/", so lists show it as HF's `org/name`; it is read past).

`ModelDetails` describe one version: `sha` is None (Civitai has no commits; the Files tab
then asks for files by path, and the version is in `card_data` and `url`), `files` its files
(sha256 from Civitai's hashes), `license_id` the creator's permissions as a "civitai:…" id
(`app.licenses` explains it), `security` each file's pickle and virus scan, and
`card_data["civitai"]` what a download records as provenance (`CivitaiProvenance`).

NSFW models are hidden unless `show_nsfw` is set (a setting, off by default): the search asks
Civitai to leave them out and filters what comes back, and details of an NSFW model are
refused with a clear error rather than shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import HubResponseError, RepoNotFoundError
from app.hub.card_html import html_to_text
from app.hub.civitai.client import (
    DEFAULT_ENDPOINT,
    CivitaiClient,
    civitai_endpoint,
    civitai_id,
)
from app.hub.civitai.licenses import license_id_of, permissions_filter
from app.hub.civitai.models import (
    CivitaiFile,
    CivitaiModel,
    CivitaiVersion,
    CommercialUse,
    FileFormat,
    ModelFilter,
    ModelType,
    ScanResult,
    SortOrder,
)
from app.hub.models import (
    AccessStatus,
    ModelCard,
    ModelDetails,
    ModelSummary,
    RepoFile,
    SearchQuery,
)
from app.hub.models import SortOrder as HubSortOrder
from app.hub.security import FileScan, RepoSecurity, ScanLevel

if TYPE_CHECKING:
    from app.store import Database

CARD_KEY = "civitai"  # card_data[CARD_KEY]: the provenance a download records

# `civitai:ID[@VERSION]`, optionally followed by "/" and the model's name (what search results
# and details carry, so that lists show a name: the name is read past, never looked up).
_ID = re.compile(r"(?:civitai:)?(\d{1,15})(?:@(\d{1,15}))?(?:/.*)?", re.IGNORECASE | re.DOTALL)
_NAME_CHARS = 80
_SORTS = {
    HubSortOrder.DOWNLOADS: SortOrder.MOST_DOWNLOADED,
    HubSortOrder.LIKES: SortOrder.HIGHEST_RATED,
    HubSortOrder.UPDATED: SortOrder.NEWEST,
}
_IMAGE_TYPES = frozenset(ModelType) - {ModelType.WILDCARDS, ModelType.WORKFLOWS, ModelType.OTHER}
# Block-level tags of a description: each starts a paragraph of the card. At most 200
# characters of attributes are looked at, so a "<p" never closed costs linear time.
_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:p|div|h[1-6]|li|ul|ol|blockquote|pre|tr|hr|br)\b[^<>]{0,200}>", re.IGNORECASE
)


@dataclass(frozen=True, kw_only=True)
class CivitaiRef:
    """A model id and, optionally, one of its versions."""

    model_id: int
    version_id: int | None = None


def parse_ref(text: str, *, revision: str | None = None) -> CivitaiRef:
    """`civitai:ID`, `civitai:ID@VERSION` or `ID[@VERSION]`; `revision` names a version too.

    Raises:
        RepoNotFoundError: `text` (or `revision`) is not of that form.
    """
    match = _ID.fullmatch(text.strip())
    if match is None:
        raise RepoNotFoundError(
            f"{text[:60]!r} is not a Civitai model id.",
            repo_id=text[:60],
            hint="Use civitai:ID or civitai:ID@VERSION (the numbers in the model's address).",
        )
    version = match.group(2)
    if revision is not None and revision.strip():
        if not revision.strip().isdigit() or len(revision.strip()) > 15:
            raise RepoNotFoundError(
                f"{revision[:40]!r} is not a Civitai version id.", repo_id=text[:60]
            )
        version = revision.strip()
    return CivitaiRef(model_id=int(match.group(1)), version_id=int(version) if version else None)


def named_id(model: CivitaiModel) -> str:
    """`civitai:ID/Name`: the id a result and its details carry, so lists show a name."""
    name = " ".join(model.name.replace("/", "-").split())[:_NAME_CHARS]
    return f"{civitai_id(model.id)}/{name}" if name else civitai_id(model.id)


def is_civitai_id(text: str) -> bool:
    """Whether `text` names a Civitai model (`civitai:` followed by a number)."""
    return text.strip().lower().startswith("civitai:") and _ID.fullmatch(text.strip()) is not None


class CivitaiHub:
    """A `HubProvider` for Civitai.

    Args:
        client: the Civitai client (its endpoint and token).
        show_nsfw: whether NSFW models are shown (the setting; off by default).
        page_size: models per request while searching.
    """

    def __init__(self, client: CivitaiClient, *, show_nsfw: bool = False, page_size: int = 20):
        self._client = client
        self._show_nsfw = show_nsfw
        self._page_size = page_size

    @classmethod
    def open(
        cls, *, endpoint: str | None = None, token: str | None = None, show_nsfw: bool = False
    ) -> CivitaiHub:
        """A provider with its own client on `endpoint` (default: civitai.com)."""
        client = CivitaiClient(endpoint=endpoint or DEFAULT_ENDPOINT, token=token)
        return cls(client, show_nsfw=show_nsfw)

    @property
    def name(self) -> str:
        return "Civitai" if self.endpoint == DEFAULT_ENDPOINT else f"Civitai ({self.endpoint})"

    @property
    def endpoint(self) -> str:
        return self._client.endpoint

    @property
    def client(self) -> CivitaiClient:
        return self._client

    def close(self) -> None:
        self._client.close()

    # -- HubProvider ----------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> Iterator[ModelSummary]:
        """Models matching `query`; `task`/`library` name a Civitai type ("LORA",
        "Checkpoint"), `license` a "civitai:…" permissions id (models allowing at least it)."""
        models = self._client.list_models(self.model_filter(query))
        return (self.summary(model) for model in models)

    def search_models(self, query: SearchQuery) -> Iterator[CivitaiModel]:
        """The same search, as Civitai's own models (versions, files, permissions)."""
        return self._client.list_models(self.model_filter(query))

    def model_filter(self, query: SearchQuery) -> ModelFilter:
        types = tuple(
            ModelType.from_api(value)
            for value in (query.library, query.task)
            if value and ModelType.from_api(value) is not ModelType.OTHER
        )
        wanted = permissions_filter(query.license) if query.license else None
        return ModelFilter(
            query=query.text,
            types=types,
            username=(query.author or "").strip() or None,
            sort=_SORTS[query.sort],
            nsfw=self._show_nsfw,
            allow_commercial_use=tuple(
                use for use in CommercialUse if wanted and use in wanted.commercial_use
            ),
            allow_derivatives=True if wanted and wanted.derivatives else None,
            allow_no_credit=True if wanted and wanted.no_credit else None,
            allow_different_license=True if wanted and wanted.different_license else None,
            page_size=self._page_size,
        )

    def summary(self, model: CivitaiModel) -> ModelSummary:
        latest = model.versions[0] if model.versions else None
        return ModelSummary(
            repo_id=named_id(model),
            task=_task(model.type),
            library=model.type.value,
            downloads=model.downloads,
            likes=model.likes,
            license_id=license_id_of(model.permissions),
            last_modified=latest.published_at if latest else None,
        )

    def model_details(self, repo_id: str, *, revision: str | None = None) -> ModelDetails:
        """The details of one version (the newest unless `repo_id` or `revision` names one)."""
        ref = parse_ref(repo_id, revision=revision)
        model = self._client.get_model(ref.model_id)
        self._refuse_hidden(model)
        version = _version_of(model, ref)
        return self.details(model, version)

    def details(self, model: CivitaiModel, version: CivitaiVersion) -> ModelDetails:
        """`ModelDetails` of `version` of `model`, as `model_details` gives them."""
        return ModelDetails(
            repo_id=named_id(model),
            sha=None,  # no commits: the version is in card_data and the url
            last_modified=version.published_at,
            tags=(model.type.value, *model.tags),
            task=_task(model.type),
            library=model.type.value,
            base_models=(version.base_model,) if version.base_model else (),
            downloads=model.downloads,
            likes=model.likes,
            license_id=license_id_of(model.permissions),
            files=tuple(_repo_file(file) for file in version.files),
            card_data={CARD_KEY: _card_data(model, version)},
            url=self.model_url(model.id, version.id),
            security=RepoSecurity(
                scans_done=all(_scanned(file) for file in version.files),
                files={file.name: file_scan(file) for file in version.files},
            ),
        )

    def model_card(self, repo_id: str, *, revision: str | None = None) -> ModelCard:
        """The model's description (HTML, reduced to text paragraphs) and the version's notes."""
        ref = parse_ref(repo_id, revision=revision)
        model = self._client.get_model(ref.model_id)
        self._refuse_hidden(model)
        version = _version_of(model, ref)
        return card_of(model, version)

    def read_text_file(
        self, repo_id: str, path: str, *, revision: str | None = None, max_bytes: int = 1 << 20
    ) -> str:
        """Civitai models have no text files of their own (no LICENSE, no README)."""
        raise RepoNotFoundError(
            f"{repo_id} has no file {path}: Civitai models hold weights only.", repo_id=repo_id
        )

    def check_access(self, repo_id: str) -> AccessStatus:
        """Civitai says whether a file needs sign-in only when it is downloaded."""
        return AccessStatus.GRANTED if self._client.has_token else AccessStatus.UNKNOWN

    # -- Civitai's own ------------------------------------------------------------------------

    def model_url(self, model_id: int, version_id: int | None = None) -> str:
        url = f"{self.endpoint}/models/{model_id}"
        return url + (f"?modelVersionId={version_id}" if version_id is not None else "")

    def version(
        self, repo_id: str, *, revision: str | None = None
    ) -> tuple[CivitaiModel, CivitaiVersion]:
        """The model and the chosen version (what a download needs)."""
        ref = parse_ref(repo_id, revision=revision)
        model = self._client.get_model(ref.model_id)
        self._refuse_hidden(model)
        return model, _version_of(model, ref)

    def _refuse_hidden(self, model: CivitaiModel) -> None:
        if model.nsfw and not self._show_nsfw:
            raise RepoNotFoundError(
                f"{civitai_id(model.id)} is marked NSFW, and NSFW models are hidden.",
                repo_id=civitai_id(model.id),
                hint="Turn on 'Show NSFW models from Civitai' in Settings to see it.",
            )


class CivitaiProvider(CivitaiHub):
    """A `CivitaiHub` with its own client, made from an endpoint and a token: what
    `app.hub.choice.make_provider` builds for `--hub civitai` and the hub selector.

    Args:
        endpoint: the site (None: `CIVITAI_ENDPOINT`, else civitai.com).
        token: a Civitai API key; None: the one saved in ModelDeck, else `CIVITAI_TOKEN`.
        show_nsfw: the NSFW setting (`CivitaiSettings.show_nsfw`; off by default).
    """

    def __init__(
        self, *, endpoint: str | None = None, token: str | None = None, show_nsfw: bool = False
    ) -> None:
        if token is None:
            from app.hub.civitai.credentials import civitai_token_store
            from app.paths import data_dir

            token, _ = civitai_token_store(data_dir()).resolve()
        super().__init__(
            CivitaiClient(endpoint=civitai_endpoint(endpoint), token=token), show_nsfw=show_nsfw
        )


def file_scan(file: CivitaiFile) -> FileScan:
    """Civitai's pickle and virus scans of `file` as the app's scan badge.

    "Danger" from either scanner is unsafe; a failed scan is caution; both "Success" is safe,
    except that a pickle (PickleTensor) is never called safe: ModelDeck does not load pickles.
    """
    notes: list[str] = []
    level = ScanLevel.SAFE
    for scanner, result, message in (
        ("antivirus", file.virus_scan, file.virus_scan_message),
        ("pickle scan", file.pickle_scan, file.pickle_scan_message),
    ):
        if result is ScanResult.DANGER:
            level = ScanLevel.UNSAFE
            notes.append(f"{scanner}: danger" + (f" ({message[:120]})" if message else ""))
        elif result is ScanResult.ERROR:
            level = max(level, ScanLevel.CAUTION, key=lambda item: item.rank)
            notes.append(f"{scanner}: the scan failed")
        elif result is not ScanResult.SUCCESS:
            level = max(level, ScanLevel.NOT_SCANNED, key=lambda item: item.rank)
            notes.append(f"{scanner}: {result.value.lower()}")
    if file.format is FileFormat.PICKLE_TENSOR:
        level = max(level, ScanLevel.CAUTION, key=lambda item: item.rank)
        notes.append("a pickle (PickleTensor): ModelDeck does not download or load pickles")
    if not notes:
        notes.append("Civitai's antivirus and pickle scans found no issue.")
    return FileScan(level=level, finding="; ".join(notes))


def card_of(model: CivitaiModel, version: CivitaiVersion) -> ModelCard:
    """The card: the model's description, then the version's notes and trigger words."""
    parts = [description_markdown(model.description)]
    if version.trained_words:
        words = ", ".join(f"`{word.replace('`', '')}`" for word in version.trained_words)
        parts.append(f"**Trigger words:** {words}")
    notes = description_markdown(version.description)
    if notes:
        parts.append(f"## {_escape(version.name)}\n\n{notes}")
    return ModelCard(body="\n\n".join(part for part in parts if part), metadata={})


def description_markdown(html: str) -> str:
    """Civitai's description HTML as Markdown paragraphs of plain text (linear time).

    Tags, scripts and styles go (`html_to_text`); block elements become paragraph breaks,
    and Markdown's own characters are escaped so the text reads as written.
    """
    paragraphs = (_escape(html_to_text(piece)) for piece in _BLOCK_TAG.split(html))
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|!])")


def _escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _version_of(model: CivitaiModel, ref: CivitaiRef) -> CivitaiVersion:
    if not model.versions:
        raise HubResponseError(f"{civitai_id(model.id)} has no published version.")
    if ref.version_id is None:
        return model.versions[0]
    for version in model.versions:
        if version.id == ref.version_id:
            return version
    raise RepoNotFoundError(
        f"{civitai_id(model.id)} has no version {ref.version_id}.",
        repo_id=civitai_id(model.id, ref.version_id),
        hint="Versions: " + ", ".join(f"{v.id} ({v.name})" for v in model.versions[:10]),
    )


def _scanned(file: CivitaiFile) -> bool:
    finished = (ScanResult.SUCCESS, ScanResult.DANGER)
    return file.virus_scan in finished and file.pickle_scan in finished


def _repo_file(file: CivitaiFile) -> RepoFile:
    return RepoFile(path=file.name, size=file.size_bytes, sha256=file.sha256)


def _task(kind: ModelType) -> str | None:
    return "text-to-image" if kind in _IMAGE_TYPES else None


def _card_data(model: CivitaiModel, version: CivitaiVersion) -> Mapping[str, Any]:
    return {
        "model_id": model.id,
        "model_name": model.name,
        "type": model.type.value,
        "version_id": version.id,
        "version_name": version.name,
        "base_model": version.base_model,
        "trained_words": list(version.trained_words),
        "creator": model.creator,
        "nsfw": model.nsfw,
        "versions": [{"id": v.id, "name": v.name} for v in model.versions],
    }


@dataclass(frozen=True)
class ProviderState:
    """What a Civitai provider is made with, from the user's settings: when it changes (NSFW
    turned on, a key saved), a new provider is needed."""

    show_nsfw: bool
    token: str | None = field(repr=False)


def provider_state(database: Database) -> ProviderState:
    """The current settings and key (reads the keyring: call it off the GUI thread)."""
    from app.hub.civitai.credentials import civitai_token_store
    from app.hub.civitai.settings import load_civitai_settings

    token, _ = civitai_token_store(database.path.parent).resolve()
    return ProviderState(show_nsfw=load_civitai_settings(database).show_nsfw, token=token)


def civitai_provider(
    database: Database, *, endpoint: str | None = None, state: ProviderState | None = None
) -> CivitaiProvider:
    """The Civitai provider with the user's settings (NSFW shown or not) and saved API key:
    what the CLI, Discover and the downloads use. `state`: as `provider_state` reads it."""
    state = state or provider_state(database)
    return CivitaiProvider(endpoint=endpoint, token=state.token or "", show_nsfw=state.show_nsfw)
