"""Model hubs: what a hub is (`HubProvider`) and what it tells us (`ModelDetails`, …).

Modules, each one idea:
- `provider`: the `HubProvider` protocol every hub implements.
- `models`: the frozen dataclasses a hub returns (search results, details, files, cards).
- `huggingface`: the Hugging Face Hub (and HF-compatible mirrors) through huggingface_hub.
- `offline`: `OfflineAwareHub`, which keeps what was seen and answers from it when offline.
- `endpoint`, `credentials`: which hub to talk to, and with which token.
- `card`, `card_html`, `links`: model cards parsed, rendered safely, links vetted.
- `repo_files`: a repository's files understood (GGUF quantizations, diffusers variants).

Only the light modules are imported here; `huggingface` (which loads huggingface_hub's API)
is imported by whoever needs it, so that starting the window does not wait for it.
"""

from app.hub.models import (
    AccessStatus,
    Gating,
    ModelCard,
    ModelDetails,
    ModelSummary,
    RepoFile,
    SearchQuery,
    SortOrder,
)
from app.hub.provider import HubProvider

__all__ = [
    "AccessStatus",
    "Gating",
    "HubProvider",
    "ModelCard",
    "ModelDetails",
    "ModelSummary",
    "RepoFile",
    "SearchQuery",
    "SortOrder",
]
