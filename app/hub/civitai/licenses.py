"""Civitai's permission flags as a license id that `app.licenses.license_info` understands.

The words and what they mean live in `app.licenses` (`CIVITAI_PERMISSIONS`), beside every
other license, so the license view, badges and filters treat them like HF licenses.
"""

from __future__ import annotations

from app.hub.civitai.models import CommercialUse, Permissions
from app.licenses import CIVITAI_PREFIX

_COMMERCIAL_WORDS = {
    CommercialUse.IMAGE: "image",
    CommercialUse.RENT_CIVIT: "rentcivit",
    CommercialUse.RENT: "rent",
    CommercialUse.SELL: "sell",
}


def license_id_of(permissions: Permissions) -> str:
    """`permissions` as "civitai:image,rent,derivatives,…" ("civitai:none": nothing granted)."""
    words = [word for use, word in _COMMERCIAL_WORDS.items() if use in permissions.commercial_use]
    if permissions.derivatives:
        words.append("derivatives")
    if permissions.no_credit:
        words.append("no-credit")
    if permissions.different_license:
        words.append("different-license")
    return CIVITAI_PREFIX + (",".join(words) or "none")


def permissions_filter(license_id: str) -> Permissions | None:
    """What a search's license filter asks of Civitai ("civitai:sell,derivatives": models that
    allow at least these); None when the filter is not a Civitai permissions id."""
    key = license_id.strip().lower()
    if not key.startswith(CIVITAI_PREFIX):
        return None
    words = {word.strip() for word in key.removeprefix(CIVITAI_PREFIX).split(",")}
    return Permissions(
        commercial_use=frozenset(use for use, word in _COMMERCIAL_WORDS.items() if word in words),
        derivatives="derivatives" in words,
        no_credit="no-credit" in words,
        different_license="different-license" in words,
    )
