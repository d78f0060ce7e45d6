"""Which hub a search, a details view or a pull talks to, and the provider for it.

One factory for the window, the CLI (`--hub hf|civitai|modelscope`) and tests: Hugging Face
(or an HF-compatible endpoint) through `HuggingFaceHub`, ModelScope through `ModelScopeHub`,
and Civitai through its provider when this build has one (`app.hub.civitai.provider`).
Providers are imported only when made, so choosing a hub imports nothing heavy.
"""

from __future__ import annotations

import importlib
import importlib.util
from enum import StrEnum
from pathlib import Path

from app.errors import SettingsError
from app.hub.provider import HubProvider


class HubKind(StrEnum):
    """The hubs ModelDeck can search; the values are the CLI's `--hub` choices."""

    HUGGING_FACE = "hf"
    CIVITAI = "civitai"
    MODELSCOPE = "modelscope"

    @property
    def label(self) -> str:
        """The hub's name as a person reads it."""
        return _LABELS[self]

    @property
    def available(self) -> bool:
        """Whether this build has the provider (Civitai's may not be there yet)."""
        if self is HubKind.CIVITAI:
            return importlib.util.find_spec("app.hub.civitai.provider") is not None
        return True


_LABELS = {
    HubKind.HUGGING_FACE: "Hugging Face",
    HubKind.CIVITAI: "Civitai",
    HubKind.MODELSCOPE: "ModelScope",
}


def available_hubs() -> tuple[HubKind, ...]:
    """The hubs this build can talk to, Hugging Face first."""
    return tuple(kind for kind in HubKind if kind.available)


def make_provider(
    kind: HubKind,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    hf_cache_dir: Path | None = None,
) -> HubProvider:
    """A provider for `kind`.

    Args:
        kind: which hub.
        endpoint: its URL (None: the hub's default; for Hugging Face, pass the resolved one).
        token: the token for that hub and endpoint (None: anonymous, or the hub's own
            environment variable, e.g. `MODELSCOPE_API_TOKEN`).
        hf_cache_dir: the HF cache (Hugging Face only).

    Raises:
        SettingsError: the hub is not available in this build.
    """
    if kind is HubKind.MODELSCOPE:
        from app.hub.modelscope.provider import ModelScopeHub

        return ModelScopeHub(endpoint=endpoint, token=token)
    if kind is HubKind.CIVITAI:
        if not kind.available:
            raise SettingsError(
                "Civitai is not available in this build of ModelDeck.",
                hint="Choose Hugging Face or ModelScope.",
            )
        module = importlib.import_module("app.hub.civitai.provider")
        options = {"endpoint": endpoint} if endpoint else {}
        provider: HubProvider = module.CivitaiProvider(token=token, **options)
        return provider
    from app.hub.endpoint import DEFAULT_ENDPOINT
    from app.hub.huggingface import HuggingFaceHub

    return HuggingFaceHub(
        endpoint=endpoint or DEFAULT_ENDPOINT, token=token, cache_dir=hf_cache_dir
    )
