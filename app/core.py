"""The core's composition: database, settings, token and hub, wired from the user's data dir.

The GUI, the CLI and the tests all start here, so they see the same settings and the same
offline copies. The hub client and the token are built on first use: importing
huggingface_hub's API and the keyring costs ~0.35 s, which the window should not wait for.
A property only builds (and keeps) an object; work with effects beyond that (starting the
download queue's threads, recovering interrupted replies) is a method the front end calls.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from app import paths
from app.hub.credentials import ResolvedToken, TokenSource, TokenStore, keep_out_of_logs
from app.model_list import ModelList
from app.settings import Settings, load_settings, save_settings
from app.store import Database

if TYPE_CHECKING:
    from app.chat.conversations import ConversationStore
    from app.chat.image_store import ChatImageStore
    from app.chat.local import LocalChatEngine
    from app.chat.remote_settings import EndpointKeyStore
    from app.docs.collections import DocumentCollections
    from app.downloads import DownloadManager
    from app.hub.offline import OfflineAwareHub
    from app.images.engine import ImageEngine
    from app.images.gallery import Gallery
    from app.library import Library
    from app.serving import ModelServer


class Core:
    """The services a front end needs, rebuilt consistently when settings or the token change.

    Args:
        database: the app database (settings and offline copies live there).
        tokens: where the hub token is kept.
        endpoint_override: an endpoint for this run only (the CLI's `--endpoint`).
    """

    def __init__(
        self, database: Database, tokens: TokenStore, *, endpoint_override: str | None = None
    ) -> None:
        self.database = database
        self.tokens = tokens
        self._endpoint_override = endpoint_override
        self.settings = load_settings(database)
        self._lock = threading.Lock()
        self._token: ResolvedToken | None = None
        self._hub: OfflineAwareHub | None = None
        self._library: Library | None = None
        self._downloads: DownloadManager | None = None
        self._conversations: ConversationStore | None = None
        self._endpoint_keys: EndpointKeyStore | None = None
        self._llm: LocalChatEngine | None = None
        self._server: ModelServer | None = None
        self._images: ImageEngine | None = None
        self._gallery: Gallery | None = None
        self._documents: DocumentCollections | None = None
        # The models every page shows, refreshed when they change (scanning builds `library`).
        self.models = ModelList(lambda: self.library)

    @classmethod
    def open(cls, *, data_dir: Path | None = None, endpoint_override: str | None = None) -> Core:
        """Open the core on the user's data dir (or `data_dir`), creating it on first run."""
        folder = data_dir or paths.data_dir()
        database = Database(folder / paths.database_path().name)
        tokens = TokenStore(folder / paths.token_fallback_path().name)
        return cls(database, tokens, endpoint_override=endpoint_override)

    @property
    def endpoint(self) -> str:
        """The hub endpoint in use."""
        from app.hub.endpoint import resolve_endpoint

        return resolve_endpoint(self._endpoint_override or self.settings.hub_endpoint)

    @property
    def token(self) -> ResolvedToken:
        """The token for `endpoint` and where it came from (may block on the OS keyring).

        Everything that sends a token (the hub, the download queue, `modeldeck pull`) takes it
        from here, so the rules of `TokenStore.resolve` hold for all of them: a saved token
        only to the endpoint it was saved for, and none over plain http to another machine.
        """
        endpoint = self.endpoint
        with self._lock:
            if self._token is None:
                self._token = self.tokens.resolve(endpoint)
                keep_out_of_logs(self._token.value)
            return self._token

    @property
    def hub(self) -> OfflineAwareHub:
        """The hub for the current settings and token (built on first use; may block)."""
        token = self.token
        with self._lock:
            if self._hub is None:
                from app.hub.huggingface import HuggingFaceHub
                from app.hub.offline import OfflineAwareHub

                cache_dir = self.settings.hf_cache_dir
                provider = HuggingFaceHub(
                    endpoint=self.endpoint,
                    token=token.value,
                    cache_dir=self.settings.resolved_cache_dir() if cache_dir else None,
                )
                self._hub = OfflineAwareHub(provider, self.database)
            return self._hub

    @property
    def library(self) -> Library:
        """Every model on this machine (built on first use; scanning blocks: use a worker)."""
        with self._lock:
            if self._library is None:
                from app.library import Library

                self._library = Library(
                    self.database, hf_cache_dir=self.settings.resolved_cache_dir()
                )
            return self._library

    def start_downloads(self) -> DownloadManager:
        """The download queue, started: jobs a previous run left unfinished resume from the
        bytes on disk (blocking briefly: use a worker). Later calls return the same queue
        until settings or the token change."""
        token = self.token
        with self._lock:
            if self._downloads is None:
                from app.downloads import DownloadManager

                self._downloads = DownloadManager(
                    self.database,
                    endpoint=self.endpoint,
                    token=token.value,
                    cache_dir=self.settings.resolved_cache_dir(),
                )
                self._downloads.start()
            return self._downloads

    @property
    def conversations(self) -> ConversationStore:
        """Chat conversations (built on first use)."""
        with self._lock:
            if self._conversations is None:
                from app.chat.conversations import ConversationStore

                self._conversations = ConversationStore(self.database)
            return self._conversations

    @property
    def chat_images(self) -> ChatImageStore:
        """Images attached to chat messages, content-addressed in `<data dir>/chat-images`."""
        from app.chat.image_store import ChatImageStore

        return ChatImageStore(self.database.path.parent / "chat-images")

    def recover_interrupted_replies(self) -> int:
        """Mark replies a killed run left streaming as "interrupted", keeping their text;
        returns how many. The app calls it once at start, before showing conversations (not
        the CLI: a `modeldeck chat` beside an open window must not cut the window's reply)."""
        return self.conversations.recover_interrupted()

    @property
    def endpoint_keys(self) -> EndpointKeyStore:
        """API keys of remote OpenAI-compatible endpoints (the keyring, or a private file)."""
        with self._lock:
            if self._endpoint_keys is None:
                from app.chat.remote_settings import EndpointKeyStore

                self._endpoint_keys = EndpointKeyStore(self.database.path.parent / "endpoint-keys")
            return self._endpoint_keys

    @property
    def llm(self) -> LocalChatEngine:
        """The local LLM engine (its child process starts on the first request)."""
        with self._lock:
            if self._llm is None:
                from app.chat.local import LocalChatEngine

                self._llm = LocalChatEngine()
            return self._llm

    @property
    def server(self) -> ModelServer:
        """The OpenAI-compatible API over `llm` (built on first use, stopped until started;
        FastAPI and uvicorn are imported only by `start`)."""
        llm = self.llm
        with self._lock:
            if self._server is None:
                from app.serving import ModelServer

                self._server = ModelServer(llm, documents=lambda: self.documents)
            return self._server

    @property
    def images(self) -> ImageEngine:
        """The local image engine (its child process starts on the first request; starting
        imports torch and diffusers, seconds: call `start` on a worker)."""
        with self._lock:
            if self._images is None:
                from app.images.engine import ImageEngine

                self._images = ImageEngine(
                    config_cache_dir=self.database.path.parent / "diffusers-configs",
                    hf_cache_dir=self.settings.resolved_cache_dir(),
                )
            return self._images

    @property
    def gallery(self) -> Gallery:
        """Generated images, indexed in the database; the files live in `<data dir>/images`."""
        with self._lock:
            if self._gallery is None:
                from app.images.gallery import Gallery

                self._gallery = Gallery(self.database, folder=self.database.path.parent / "images")
            return self._gallery

    @property
    def documents(self) -> DocumentCollections:
        """Document collections to chat with; vectors in `<data dir>/documents`."""
        with self._lock:
            if self._documents is None:
                from app.docs.collections import DocumentCollections

                folder = self.database.path.parent / "documents"
                self._documents = DocumentCollections(self.database, folder)
            return self._documents

    def _stop_downloads(self, timeout: float = 10.0) -> None:
        """Stop the queue's workers (partial files and queued jobs stay for the next start)."""
        with self._lock:
            manager, self._downloads = self._downloads, None
        if manager is not None:
            manager.shutdown(wait=True, timeout=timeout)

    def update_settings(self, **changes: object) -> Settings:
        """Validate, store and apply changed settings (blocking: use a worker).

        Everything built from the settings is rebuilt to match: the hub, the library and the
        token always; when the endpoint or the cache folder moved, the download queue; when
        the cache folder moved, the image engine (its child is stopped and starts again on
        the next request) and the shared model list, if anyone has listed it.
        """
        settings = dataclasses.replace(self.settings, **changes)  # type: ignore[arg-type]
        save_settings(self.database, settings)
        cache_moved = settings.hf_cache_dir != self.settings.hf_cache_dir
        if cache_moved or settings.hub_endpoint != self.settings.hub_endpoint:
            self._stop_downloads()  # rebuilt on next use, for the new endpoint and cache
        with self._lock:
            self.settings = load_settings(self.database)
            self._token = None  # the token depends on the endpoint
            self._hub = None
            self._library = None  # the cache folder may have moved
            images = None
            if cache_moved:
                images, self._images = self._images, None
        if images is not None:
            images.stop(timeout=2.0)
        if cache_moved and self.models.scanned:
            self.models.refresh()  # the pages list what the new folder holds
        return self.settings

    def save_token(self, token: str) -> TokenSource:
        """Keep a new token for the endpoint in use (empty clears it) and use it from now on.
        Returns where it is kept."""
        location = self.tokens.save(token, endpoint=self.endpoint)
        self._forget_token()
        return location

    def keep_token_for_endpoint(self) -> None:
        """Let the saved token go to the endpoint in use (it was saved for another one)."""
        self.tokens.rebind(self.endpoint)
        self._forget_token()

    def _forget_token(self) -> None:
        """Resolve the token again on next use; the services holding the old one are rebuilt."""
        self._stop_downloads()  # rebuilt on next use, with the new token
        with self._lock:
            self._token = None
            self._hub = None

    def close(self) -> None:
        """Stop background work and close the database."""
        # Quitting waits little: what arrived is on disk, and the next start resumes from it.
        self._stop_downloads(timeout=2.0)
        with self._lock:
            server, self._server = self._server, None
        if server is not None:  # before the engine it answers from
            server.stop(timeout=2.0)
        with self._lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()
        with self._lock:
            images, self._images = self._images, None
        if images is not None:
            images.stop(timeout=2.0)
        with self._lock:
            documents, self._documents = self._documents, None
        if documents is not None:  # its embedding engines
            documents.close()
        self.models.close()  # a refresh asked for while quitting finds no database to read
        self.database.close()
