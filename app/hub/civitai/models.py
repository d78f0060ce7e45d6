"""What Civitai's REST API says about models, versions and files, as frozen dataclasses.

Field names follow ModelDeck, not the API's camelCase; `parse` builds these from the untrusted
JSON. Everything a person may act on (hashes, scans, permissions) is typed here, so the
provider, the license view and the downloader never read a dict of strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CommercialUse(StrEnum):
    """One commercial permission a Civitai creator can grant (`allowCommercialUse`).

    Today's API sends an array of these; older answers one string, where each level implied
    the ones before it ("Sell" allowed everything).
    """

    NONE = "None"
    IMAGE = "Image"  # sell images the model generates
    RENT_CIVIT = "RentCivit"  # run it on Civitai's own generation service
    RENT = "Rent"  # run it on generation services that charge
    SELL = "Sell"  # sell the model or merges of it


class ModelType(StrEnum):
    """Civitai's model types (`GET /api/v1/enums`, ModelType); OTHER for any new one."""

    CHECKPOINT = "Checkpoint"
    TEXTUAL_INVERSION = "TextualInversion"
    HYPERNETWORK = "Hypernetwork"
    AESTHETIC_GRADIENT = "AestheticGradient"
    LORA = "LORA"
    LOCON = "LoCon"
    DORA = "DoRA"
    CONTROLNET = "Controlnet"
    UPSCALER = "Upscaler"
    MOTION_MODULE = "MotionModule"
    VAE = "VAE"
    POSES = "Poses"
    WILDCARDS = "Wildcards"
    WORKFLOWS = "Workflows"
    DETECTION = "Detection"
    OTHER = "Other"

    @classmethod
    def from_api(cls, value: object) -> ModelType:
        for member in cls:
            if isinstance(value, str) and value.lower() == member.value.lower():
                return member
        return cls.OTHER


class SortOrder(StrEnum):
    """`sort` of `GET /api/v1/models`."""

    HIGHEST_RATED = "Highest Rated"
    MOST_DOWNLOADED = "Most Downloaded"
    NEWEST = "Newest"


class Period(StrEnum):
    """`period` of `GET /api/v1/models`: the time window the sort counts over."""

    ALL_TIME = "AllTime"
    YEAR = "Year"
    MONTH = "Month"
    WEEK = "Week"
    DAY = "Day"


class ScanResult(StrEnum):
    """A file's `pickleScanResult` / `virusScanResult`."""

    PENDING = "Pending"
    SUCCESS = "Success"
    DANGER = "Danger"
    ERROR = "Error"
    UNKNOWN = "Unknown"  # absent, or a word this version does not know

    @classmethod
    def from_api(cls, value: object) -> ScanResult:
        for member in cls:
            if value == member.value:
                return member
        return cls.UNKNOWN


class FileFormat(StrEnum):
    """`metadata.format` of a file."""

    SAFETENSOR = "SafeTensor"
    PICKLE_TENSOR = "PickleTensor"  # a pickle: loading it can run code
    GGUF = "GGUF"
    DIFFUSERS = "Diffusers"
    CORE_ML = "Core ML"
    ONNX = "ONNX"
    OTHER = "Other"

    @classmethod
    def from_api(cls, value: object) -> FileFormat:
        for member in cls:
            if value == member.value:
                return member
        return cls.OTHER


@dataclass(frozen=True, kw_only=True)
class Permissions:
    """What the creator allows, from the model's `allow*` flags."""

    commercial_use: frozenset[CommercialUse]
    derivatives: bool  # allowDerivatives: share merges / fine-tunes of it
    no_credit: bool  # allowNoCredit: use it without crediting the creator
    different_license: bool  # allowDifferentLicense: share merges under other permissions


@dataclass(frozen=True, kw_only=True)
class CivitaiFile:
    """One file of a model version."""

    id: int
    name: str  # as Civitai lists it; checked again before it becomes a path
    size_bytes: int | None  # from sizeKB (a float of KiB): approximate, for display
    kind: str  # "Model", "Pruned Model", "VAE", "Config", "Training Data", …
    format: FileFormat
    precision: str | None  # metadata.fp: "fp16", "fp32", "bf16", …
    size_variant: str | None  # metadata.size: "full" or "pruned"
    sha256: str | None  # lower-case hex; the only hash a download is verified against
    autov2: str | None  # first 10 hex digits of the sha256, lower case
    pickle_scan: ScanResult
    pickle_scan_message: str
    virus_scan: ScanResult
    virus_scan_message: str
    primary: bool
    download_url: str | None


@dataclass(frozen=True, kw_only=True)
class CivitaiVersion:
    """One version of a model: its own files, base model and trigger words."""

    id: int
    model_id: int | None
    name: str
    base_model: str | None  # "SD 1.5", "SDXL 1.0", "Pony", "Flux.1 D", …
    trained_words: tuple[str, ...]  # trigger words a LoRA or embedding needs in the prompt
    description: str  # HTML, untrusted
    published_at: datetime | None
    files: tuple[CivitaiFile, ...]
    download_url: str | None
    # Set by /model-versions/{id} and by-hash, which name the model the version belongs to.
    model_name: str | None = None
    model_type: ModelType | None = None
    model_nsfw: bool | None = None

    @property
    def primary_file(self) -> CivitaiFile | None:
        """The file Civitai marks primary, else the first one."""
        for file in self.files:
            if file.primary:
                return file
        return self.files[0] if self.files else None


@dataclass(frozen=True, kw_only=True)
class CivitaiModel:
    """A model and its versions (newest first, as the API lists them)."""

    id: int
    name: str
    type: ModelType
    nsfw: bool
    poi: bool  # depicts a real person
    description: str  # HTML, untrusted
    tags: tuple[str, ...]
    creator: str | None
    downloads: int
    likes: int  # thumbsUpCount (favoriteCount in older answers)
    permissions: Permissions
    versions: tuple[CivitaiVersion, ...]


@dataclass(frozen=True, kw_only=True)
class ModelsPage:
    """One page of `GET /api/v1/models`."""

    items: tuple[CivitaiModel, ...]
    next_cursor: str | None


@dataclass(frozen=True, kw_only=True)
class ModelFilter:
    """The parameters of `GET /api/v1/models`; None and empty mean "any"."""

    query: str = ""
    types: tuple[ModelType, ...] = ()
    base_models: tuple[str, ...] = ()
    tag: str | None = None
    username: str | None = None
    sort: SortOrder = SortOrder.MOST_DOWNLOADED
    period: Period = Period.ALL_TIME
    nsfw: bool = False  # False asks Civitai to leave NSFW out (and we filter too)
    allow_commercial_use: tuple[CommercialUse, ...] = ()
    allow_derivatives: bool | None = None
    allow_no_credit: bool | None = None
    allow_different_license: bool | None = None
    page_size: int = 20
