"""The hub Discover searches: Hugging Face (or the HF-compatible endpoint in Settings),
ModelScope, and Civitai when this build has its provider.

Each hub's provider is wrapped in `OfflineAwareHub` (saved copies of what was seen answer
when it is offline) and made once, on first use; Hugging Face's is the core's own, so a
change of endpoint or token in Settings reaches Discover as before.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from PySide6.QtWidgets import QComboBox, QWidget

from app.core import Core
from app.hub.choice import HubKind, available_hubs, make_provider
from app.hub.civitai.provider import ProviderState
from app.hub.endpoint import DEFAULT_ENDPOINT
from app.hub.modelscope.api import ModelScopeClient
from app.hub.modelscope.provider import ModelScopeHub
from app.hub.offline import OfflineAwareHub


class HubSelector(QComboBox):
    """A combo box of the hubs; `hub()` is the provider of the chosen one (thread-safe)."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._providers: dict[HubKind, OfflineAwareHub] = {}
        self._civitai: tuple[ProviderState, OfflineAwareHub] | None = None
        self._modelscope: ModelScopeHub | None = None
        self._lock = threading.Lock()
        for kind in available_hubs():
            # Qt keeps a str subclass as a plain string: the value goes in, the kind comes out.
            self.addItem(self._label(kind), kind.value)
        self.setAccessibleName("Hub")
        self.setToolTip("Which hub to search")
        self.currentIndexChanged.connect(self._remember_kind)
        self._kind = self.kind()

    def kind(self) -> HubKind:
        """The chosen hub."""
        data = self.currentData()
        return HubKind(data) if data in set(HubKind) else HubKind.HUGGING_FACE

    def select(self, kind: HubKind) -> None:
        """Choose `kind` (ignored when this build does not have it)."""
        index = self.findData(kind.value)
        if index >= 0:
            self.setCurrentIndex(index)

    def hub(self) -> OfflineAwareHub:
        """The chosen hub's provider (may block: call it off the GUI thread)."""
        kind = self._kind
        if kind is HubKind.HUGGING_FACE:
            return self._core.hub
        if kind is HubKind.MODELSCOPE:
            self.modelscope_client()  # makes the provider once, with its client
        if kind is HubKind.CIVITAI:
            return self._civitai_hub()
        with self._lock:
            provider = self._providers.get(kind)
            if provider is None:
                provider = OfflineAwareHub(make_provider(kind), self._core.database)
                self._providers[kind] = provider
            return provider

    def _civitai_hub(self) -> OfflineAwareHub:
        """Civitai's provider, made again when its settings (NSFW) or API key changed."""
        from app.hub.civitai.provider import civitai_provider, provider_state

        state = provider_state(self._core.database)
        with self._lock:
            made = self._civitai
            if made is None or made[0] != state:
                provider = civitai_provider(self._core.database, state=state)
                made = self._civitai = (state, OfflineAwareHub(provider, self._core.database))
            return made[1]

    def modelscope_client(self) -> ModelScopeClient:
        """The client of the ModelScope provider (its endpoint and token), made if needed."""
        with self._lock:
            if self._modelscope is None:
                provider = make_provider(HubKind.MODELSCOPE)
                assert isinstance(provider, ModelScopeHub)
                self._modelscope = provider
                self._providers[HubKind.MODELSCOPE] = OfflineAwareHub(provider, self._core.database)
            return self._modelscope.client

    def _remember_kind(self) -> None:
        # Read on worker threads through `hub()`: a plain attribute, set on the GUI thread.
        self._kind = self.kind()

    def _label(self, kind: HubKind) -> str:
        if kind is not HubKind.HUGGING_FACE:
            return kind.label
        endpoint = self._core.endpoint
        if endpoint == DEFAULT_ENDPOINT:
            return kind.label
        return urlsplit(endpoint).netloc or endpoint  # a mirror or private HF-compatible hub
