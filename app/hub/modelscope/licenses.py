"""ModelScope's license names turned into the license ids `app.licenses` knows.

ModelScope shows licenses by display name ("Apache License 2.0", "MIT License", "CC BY-NC
4.0") where Hugging Face uses ids ("apache-2.0", "mit", "cc-by-nc-4.0"). Mapping them here
lets the one license view (category, commercial use, duties) describe both hubs alike; a name
that maps to nothing is kept as it was sent and shown as "not recognised".
"""

from __future__ import annotations

import re

from app.licenses import known_license_ids

_BY_NAME = {
    "apache license 2.0": "apache-2.0",
    "apache license version 2.0": "apache-2.0",
    "apache 2.0": "apache-2.0",
    "apache-2": "apache-2.0",
    "apache2.0": "apache-2.0",
    "mit license": "mit",
    "gnu general public license v3.0": "gpl-3.0",
    "gpl-3": "gpl-3.0",
    "gplv3": "gpl-3.0",
    "gplv2": "gpl-2.0",
    "agplv3": "agpl-3.0",
    "lgplv3": "lgpl-3.0",
    "bsd 3-clause": "bsd-3-clause",
    "bsd-3": "bsd-3-clause",
    "creative commons attribution 4.0": "cc-by-4.0",
    "tongyi qianwen license agreement": "tongyi-qianwen",
    "tongyi qianwen research license agreement": "qwen-research",
    "openrail-m": "creativeml-openrail-m",
}
_CREATIVE_COMMONS = re.compile(r"^cc[\s-]+((?:by)(?:[\s-]+(?:nc|nd|sa))*)[\s-]+(\d\.\d)$")


def modelscope_license_id(name: str | None) -> str | None:
    """The `app.licenses` id for a ModelScope license name (None: no license given).

    >>> modelscope_license_id("Apache License 2.0")
    'apache-2.0'
    >>> modelscope_license_id("CC BY-NC-SA 4.0")
    'cc-by-nc-sa-4.0'
    """
    if name is None or not name.strip():
        return None
    key = " ".join(name.strip().lower().split())
    if key in _BY_NAME:
        return _BY_NAME[key]
    match = _CREATIVE_COMMONS.match(key)
    if match:
        elements = "-".join(match.group(1).replace("-", " ").split())
        return f"cc-{elements}-{match.group(2)}"
    hyphenated = key.replace(" ", "-")  # "CreativeML OpenRAIL-M" is "creativeml-openrail-m"
    return hyphenated if hyphenated in known_license_ids() else key
