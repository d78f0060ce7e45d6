"""Civitai's JSON, read defensively into `app.hub.civitai.models`.

Every answer is a stranger's data. The body is parsed with its size and nesting bounded
(`parse_untrusted_json`); then each field is taken only if it has the documented type, so a
missing or odd optional field becomes its "unknown" value, and only what the app cannot do
without (a model's or version's numeric id, the shape of the envelope) raises
`HubResponseError`. Lists and texts are capped, so a hostile answer costs bounded memory and
time. Hashes are kept only when they are hex of the right length; the AutoV2 must agree with
the sha256 it abbreviates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from app.errors import HubResponseError
from app.hub.civitai.models import (
    CivitaiFile,
    CivitaiModel,
    CivitaiVersion,
    CommercialUse,
    FileFormat,
    ModelsPage,
    ModelType,
    Permissions,
    ScanResult,
)
from app.untrusted_json import UntrustedJsonError, parse_untrusted_json

MAX_BODY_BYTES = 16 << 20
"""A page of 100 models with all versions and descriptions is ~2-5 MB; more is hostile."""
MAX_ITEMS = 200  # models per page (the API's own limit is 100)
MAX_VERSIONS = 200
MAX_FILES = 100
MAX_WORDS = 100  # trigger words and tags
MAX_NAME_CHARS = 300
MAX_WORD_CHARS = 200
MAX_DESCRIPTION_CHARS = 1 << 20
MAX_ID = (1 << 53) - 1  # ids are JavaScript numbers

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_AUTOV2 = re.compile(r"[0-9a-fA-F]{10}")
_WHITESPACE = re.compile(r"\s+")


def parse_json(raw: bytes, *, what: str) -> object:
    """The bounded parse of one body; `HubResponseError` for anything that is not JSON."""
    try:
        return parse_untrusted_json(raw, max_bytes=MAX_BODY_BYTES, what=what)
    except UntrustedJsonError as exc:
        raise HubResponseError(
            exc.message, hint="Civitai, or what answers for it, is broken."
        ) from None


def models_page(data: object) -> ModelsPage:
    """`GET /api/v1/models`: `{"items": [...], "metadata": {"nextCursor": ...}}`."""
    envelope = _object(data, "the list of models")
    items = envelope.get("items")
    if not isinstance(items, list):
        raise HubResponseError("Civitai's list of models has no items.")
    metadata = envelope.get("metadata")
    cursor: object = metadata.get("nextCursor") if isinstance(metadata, Mapping) else None
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        cursor = str(cursor)
    return ModelsPage(
        items=tuple(model(item) for item in items[:MAX_ITEMS]),
        next_cursor=cursor if isinstance(cursor, str) and 0 < len(cursor) <= 1000 else None,
    )


def model(data: object) -> CivitaiModel:
    """One model (`GET /api/v1/models/{id}`, or an item of the list)."""
    item = _object(data, "a model")
    model_id = _id(item.get("id"), "model")
    stats = item.get("stats")
    stats = stats if isinstance(stats, Mapping) else {}
    creator = item.get("creator")
    versions = item.get("modelVersions")
    return CivitaiModel(
        id=model_id,
        name=_name(item.get("name")) or f"model {model_id}",
        type=ModelType.from_api(item.get("type")),
        nsfw=_nsfw(item),
        poi=item.get("poi") is True,
        description=_text(item.get("description"), MAX_DESCRIPTION_CHARS),
        tags=_words(item.get("tags")),
        creator=_name(creator.get("username")) or None if isinstance(creator, Mapping) else None,
        downloads=_count(stats.get("downloadCount")),
        likes=_count(stats.get("thumbsUpCount", stats.get("favoriteCount"))),
        permissions=permissions(item),
        versions=tuple(
            version(entry, model_id=model_id)
            for entry in (versions[:MAX_VERSIONS] if isinstance(versions, list) else ())
        ),
    )


def version(data: object, *, model_id: int | None = None) -> CivitaiVersion:
    """One version (`GET /api/v1/model-versions/{id}`, by-hash, or an entry of a model)."""
    entry = _object(data, "a model version")
    version_id = _id(entry.get("id"), "model version")
    files = entry.get("files")
    parent = entry.get("model")
    parent = parent if isinstance(parent, Mapping) else None
    listed_model = entry.get("modelId")
    return CivitaiVersion(
        id=version_id,
        model_id=_optional_id(listed_model) or model_id,
        name=_name(entry.get("name")) or f"version {version_id}",
        base_model=_name(entry.get("baseModel")) or None,
        trained_words=_words(entry.get("trainedWords")),
        description=_text(entry.get("description"), MAX_DESCRIPTION_CHARS),
        published_at=_datetime(entry.get("publishedAt") or entry.get("createdAt")),
        files=tuple(file(item) for item in (files[:MAX_FILES] if isinstance(files, list) else ())),
        download_url=_url(entry.get("downloadUrl")),
        model_name=(_name(parent.get("name")) or None) if parent else None,
        model_type=ModelType.from_api(parent.get("type")) if parent else None,
        model_nsfw=_nsfw(parent) if parent else None,
    )


def file(data: object) -> CivitaiFile:
    """One file of a version, with its hashes, scans and format."""
    item = _object(data, "a file")
    metadata = item.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    hashes = item.get("hashes")
    hashes = hashes if isinstance(hashes, Mapping) else {}
    sha256 = _hex(hashes.get("SHA256"), _SHA256)
    autov2 = _hex(hashes.get("AutoV2"), _AUTOV2)
    if sha256 is not None and autov2 is not None and not sha256.startswith(autov2):
        autov2 = None  # an AutoV2 that abbreviates another file: trust the sha256
    if sha256 is not None and autov2 is None:
        autov2 = sha256[:10]
    return CivitaiFile(
        id=_optional_id(item.get("id")) or 0,
        name=_text(item.get("name"), MAX_NAME_CHARS),
        size_bytes=_size(item.get("sizeKB")),
        kind=_name(item.get("type")) or "Model",
        format=FileFormat.from_api(metadata.get("format")),
        precision=_name(metadata.get("fp")) or None,
        size_variant=_name(metadata.get("size")) or None,
        sha256=sha256,
        autov2=autov2,
        pickle_scan=ScanResult.from_api(item.get("pickleScanResult")),
        pickle_scan_message=_name(item.get("pickleScanMessage")),
        virus_scan=ScanResult.from_api(item.get("virusScanResult")),
        virus_scan_message=_name(item.get("virusScanMessage")),
        primary=item.get("primary") is True,
        download_url=_url(item.get("downloadUrl")),
    )


def permissions(item: Mapping[str, object]) -> Permissions:
    """The `allow*` flags. An absent flag is read as the strictest value."""
    raw = item.get("allowCommercialUse")
    values = raw if isinstance(raw, list) else [raw]
    granted = {
        CommercialUse(value)
        for value in values
        if isinstance(value, str) and value in _COMMERCIAL_VALUES
    }
    if isinstance(raw, str) and raw in _IMPLIED:  # an older answer: one level, implying lower
        granted |= _IMPLIED[raw]
    granted.discard(CommercialUse.NONE)
    return Permissions(
        commercial_use=frozenset(granted),
        derivatives=item.get("allowDerivatives") is True,
        no_credit=item.get("allowNoCredit") is True,
        different_license=item.get("allowDifferentLicense") is True,
    )


_COMMERCIAL_VALUES = frozenset(member.value for member in CommercialUse)
_IMPLIED = {
    "Image": frozenset({CommercialUse.IMAGE}),
    "Rent": frozenset({CommercialUse.IMAGE, CommercialUse.RENT_CIVIT, CommercialUse.RENT}),
    "Sell": frozenset(
        {CommercialUse.IMAGE, CommercialUse.RENT_CIVIT, CommercialUse.RENT, CommercialUse.SELL}
    ),
}


# -- fields ----------------------------------------------------------------------------------


def _object(data: object, what: str) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise HubResponseError(f"Civitai sent {what} that is not a JSON object.")
    return data


def _id(value: object, what: str) -> int:
    checked = _optional_id(value)
    if checked is None:
        raise HubResponseError(f"Civitai sent a {what} without a valid id ({str(value)[:40]!r}).")
    return checked


def _optional_id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return value
    return 0


def _size(value: object) -> int | None:
    """`sizeKB` (KiB, a float) as bytes; None when it is no sensible number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= 1 << 35:  # 32 TiB in KiB
        return None
    return round(value * 1024)


def _nsfw(item: Mapping[str, object]) -> bool:
    """NSFW when the flag says so or the level is above PG (1); unknown counts as safe only
    when both are absent, since the listing asked Civitai to leave NSFW out."""
    level = item.get("nsfwLevel")
    high_level = isinstance(level, int) and not isinstance(level, bool) and level > 1
    return item.get("nsfw") is True or high_level


def _hex(value: object, pattern: re.Pattern[str]) -> str | None:
    return value.lower() if isinstance(value, str) and pattern.fullmatch(value) else None


def _text(value: object, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    text = value[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON's \ud800
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def _name(value: object) -> str:
    """A short text on one line (names, base models, scan messages)."""
    return _WHITESPACE.sub(" ", _text(value, MAX_NAME_CHARS * 4)).strip()[:MAX_NAME_CHARS]


def _words(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    words = (_name(item)[:MAX_WORD_CHARS] for item in value[: MAX_WORDS * 2])
    return tuple(dict.fromkeys(word for word in words if word))[:MAX_WORDS]


def _url(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 2048:
        return value
    return None


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
