"""Split a model card (a repository's README.md) into its YAML front matter and Markdown body."""

from __future__ import annotations

import yaml
from huggingface_hub.repocard import REGEX_YAML_BLOCK

from app.hub.models import ModelCard


def parse_card(text: str) -> ModelCard:
    """Parse a README into a `ModelCard`.

    Broken front matter never raises: the body is kept, the metadata is empty, and
    `metadata_error` says what was wrong, so the card still shows.
    """
    match = REGEX_YAML_BLOCK.search(text)
    if match is None:
        return ModelCard(body=text)
    body = text[match.end() :]
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ModelCard(
            body=body, metadata_error=f"The card's metadata is not valid YAML: {first_line}"
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return ModelCard(
            body=body, metadata_error="The card's metadata is not a mapping of keys to values."
        )
    return ModelCard(body=body, metadata={str(key): value for key, value in data.items()})
