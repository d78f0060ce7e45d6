"""The one error tree of the core.

Every error a person may see derives from `AppError`. Subclasses also inherit the matching
built-in, so callers that only know `LookupError` or `ConnectionError` still catch them.
`message` is one line a person can act on; `hint` says what to do next, when there is
something to do.
"""

from __future__ import annotations


class AppError(Exception):
    """Root of ModelDeck's errors: a one-line message and an optional hint."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class HubError(AppError):
    """Something went wrong talking to a model hub."""


class HubUnreachableError(HubError, ConnectionError):
    """The hub could not be reached at all (refused, DNS, timeout): the app is offline."""


class HubResponseError(HubError, ValueError):
    """The hub answered, but with an error status or a body that makes no sense."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class RateLimitedError(HubResponseError):
    """The hub asked us to slow down (HTTP 429)."""

    def __init__(self, message: str, *, retry_after: float | None, hint: str | None = None) -> None:
        super().__init__(message, status=429, hint=hint)
        self.retry_after = retry_after


class RepoNotFoundError(HubError, LookupError):
    """The repository (or revision, or file) does not exist, or is private to someone else."""

    def __init__(self, message: str, *, repo_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.repo_id = repo_id


class RepoFileNotFoundError(RepoNotFoundError):
    """The repository exists, but has no such file at that revision."""

    def __init__(self, message: str, *, repo_id: str, path: str, hint: str | None = None) -> None:
        super().__init__(message, repo_id=repo_id, hint=hint)
        self.path = path


class GatedRepoError(HubError, PermissionError):
    """The repository is gated: its terms must be accepted on the hub before files can be read."""

    def __init__(self, message: str, *, repo_id: str, url: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.repo_id = repo_id
        self.url = url


class SettingsError(AppError, ValueError):
    """A setting has a value that cannot be used (e.g. an endpoint that is not a URL)."""


class DownloadError(AppError):
    """A download could not finish; the partial file is kept unless said otherwise."""


class DiskFullError(DownloadError, OSError):
    """Not enough free space for a download (checked before, or hit while writing)."""


class IntegrityError(DownloadError, ValueError):
    """A downloaded file does not match the sha256 the hub published for it."""


class CheckpointError(AppError, ValueError):
    """A file or folder is not a checkpoint ModelDeck can read (wrong magic, truncated, …)."""

    def __init__(self, message: str, *, path: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class ChatTemplateError(AppError, ValueError):
    """A chat template could not render a conversation (syntax, a refused operation, a limit).

    A model's own template failing is not shown as an error (a known format stands in for it,
    with a note); a template the person chose as an override failing is.
    """
