"""What a model's license lets you do, for every license id the Hugging Face Hub uses.

`license_info` turns the `license` field of a model card (plus `license_name` and
`license_link`, which the Hub uses with `license: other`) into a `LicenseInfo`: a display
name, a category, whether commercial use is allowed and on what condition, and a short
plain-language summary of what the user must do. The facts live in one table, `_TABLE`,
read top to bottom; nothing here touches the network.

The summaries are orientation, not legal advice: every entry links the license text
where there is a canonical one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CIVITAI_PERMISSIONS",
    "CIVITAI_PREFIX",
    "OBLIGATION_TAGS",
    "CommercialUse",
    "LicenseCategory",
    "LicenseInfo",
    "known_license_ids",
    "license_info",
]


class LicenseCategory(StrEnum):
    """The broad kind of a license, for badges and filters."""

    PERMISSIVE = "permissive"  # use, change and share freely; keep notices
    COPYLEFT = "copyleft"  # shared changes must stay under the same license
    NON_COMMERCIAL = "non-commercial"  # no commercial use (often research only)
    # usable, often commercially, but the license restricts what you may do with it:
    # behavioural-use rules (RAIL, Llama, Gemma, ...) or no sharing of modified versions
    USE_RESTRICTED = "use-restricted"
    CUSTOM = "custom"  # a license of the author's own; read its text
    UNKNOWN = "unknown"  # none declared, or not recognised


class CommercialUse(StrEnum):
    """Whether the license allows commercial use."""

    YES = "yes"
    NO = "no"
    CONDITIONAL = "conditional"  # yes, on the condition in `LicenseInfo.commercial_condition`
    UNKNOWN = "unknown"


#: Every tag `LicenseInfo.obligations` may hold: short things the user must do or avoid.
OBLIGATION_TAGS: frozenset[str] = frozenset(
    {
        "attribution",
        "include license",
        "state changes",
        "share-alike",
        "disclose source",
        "network use is distribution",
        "no derivatives",
        "non-commercial only",
        "research only",
        "acceptable-use policy",
        "pass on use restrictions",
        "no endorsement",
        "don't improve other models",
        "show 'Built with Llama'",
        "name models 'Llama …'",
        "computational use only",
    }
)


@dataclass(frozen=True, kw_only=True)
class LicenseInfo:
    """What one license lets the user do, in plain words."""

    id: str  # normalized id (lower-case), "unknown" when none was declared
    name: str  # display name, e.g. "Apache License 2.0"
    category: LicenseCategory
    commercial_use: CommercialUse
    commercial_condition: str | None  # set exactly when commercial_use is CONDITIONAL
    summary: str  # one or two plain sentences: what the user must do
    obligations: tuple[str, ...]  # tags from OBLIGATION_TAGS
    # canonical license text; for "other", the card's license_link, which may be relative
    # to the repository (e.g. "LICENSE")
    url: str | None
    is_known: bool  # False for ids not in the table
    # What the model, and what it makes, may not be used for (RAIL licenses' Attachment A).
    use_restrictions: tuple[str, ...] = ()


def _license(
    license_id: str,
    name: str,
    category: LicenseCategory,
    commercial_use: CommercialUse,
    summary: str,
    *,
    condition: str | None = None,
    obligations: tuple[str, ...] = (),
    url: str | None = None,
    use_restrictions: tuple[str, ...] = (),
) -> LicenseInfo:
    """Build one table entry, refusing entries that break the table's own rules.

    Raises:
        ValueError: an unknown or repeated obligation tag, a condition given without
            CONDITIONAL (or missing with it), or a url that is not https.
    """
    unknown_tags = set(obligations) - OBLIGATION_TAGS
    if unknown_tags or len(set(obligations)) != len(obligations):
        raise ValueError(f"{license_id}: bad obligation tags {obligations!r}")
    if (condition is not None) != (commercial_use is CommercialUse.CONDITIONAL):
        raise ValueError(f"{license_id}: a condition goes with CONDITIONAL, and only with it")
    if url is not None and not url.startswith("https://"):
        raise ValueError(f"{license_id}: url must be https, got {url!r}")
    return LicenseInfo(
        id=license_id,
        name=name,
        category=category,
        commercial_use=commercial_use,
        commercial_condition=condition,
        summary=summary,
        obligations=obligations,
        url=url,
        is_known=True,
        use_restrictions=use_restrictions,
    )


_CC_ELEMENTS = {"by": "Attribution", "sa": "ShareAlike", "nc": "NonCommercial"}
_CC_PORT = {"2.0": "Generic", "2.5": "Generic", "3.0": "Unported", "4.0": "International"}


def _creative_commons(elements: str, version: str) -> LicenseInfo:
    """Build a Creative Commons entry from its elements ("by-nc-sa") and version ("4.0")."""
    parts = elements.split("-")
    nc, sa, nd = "nc" in parts, "sa" in parts, "nd" in parts
    # 4.0 says "NoDerivatives"; the older versions say "NoDerivs".
    words = [
        _CC_ELEMENTS.get(p, "NoDerivatives" if version == "4.0" else "NoDerivs") for p in parts
    ]
    name = f"Creative Commons {'-'.join(words)} {version} {_CC_PORT[version]}"
    if nc:
        category = LicenseCategory.NON_COMMERCIAL
    elif nd:
        category = LicenseCategory.USE_RESTRICTED
    elif sa:
        category = LicenseCategory.COPYLEFT
    else:
        category = LicenseCategory.PERMISSIVE
    purpose = "for non-commercial purposes only" if nc else "also commercially"
    if nd:
        allowed = (
            f"You may use it and share it unchanged, {purpose}, but not share modified versions."
        )
        duties = "Credit the creator and link to the license."
    else:
        allowed = f"Free to use, modify and share, {purpose}."
        duties = "Credit the creator, link to the license and say what you changed"
        duties += "; share adaptations under the same license." if sa else "."
    tags = ["attribution", "include license"]
    tags += ["no derivatives"] if nd else ["state changes"]
    tags += ["share-alike"] if sa else []
    tags += ["non-commercial only"] if nc else []
    return _license(
        f"cc-{elements}-{version}",
        name,
        category,
        CommercialUse.NO if nc else CommercialUse.YES,
        f"{allowed} {duties}",
        obligations=tuple(tags),
        url=f"https://creativecommons.org/licenses/{elements}/{version}/",
    )


_P = LicenseCategory.PERMISSIVE
_C = LicenseCategory.COPYLEFT
_NC = LicenseCategory.NON_COMMERCIAL
_R = LicenseCategory.USE_RESTRICTED
_YES = CommercialUse.YES
_NO = CommercialUse.NO
_IF = CommercialUse.CONDITIONAL

# Tag sets several entries share.
_NOTICE = ("include license", "attribution")
_APACHE_LIKE = ("include license", "attribution", "state changes")
_GPL_LIKE = ("share-alike", "disclose source", "include license", "state changes")
_RAIL = ("acceptable-use policy", "pass on use restrictions", "include license", "state changes")
_RESEARCH = ("research only", "non-commercial only", "include license")
_LLAMA_3X = (
    "acceptable-use policy",
    "include license",
    "attribution",
    "show 'Built with Llama'",
    "name models 'Llama …'",
)

# Texts several entries share.
_FREE = "Free to use, modify and share, also commercially."
_KEEP_NOTICE = "Keep the copyright notice and license text in copies you share."
_PUBLIC_DOMAIN = (
    "Dedicated to the public domain: use, modify and share it for anything, no conditions."
)
_GPL = (
    "Free to use, also commercially. If you share it or work based on it, share the complete "
    "source under the same license, with the license text and a note of your changes."
)
_LGPL = (
    "Free to use, also commercially, including from software under other licenses. Changes to "
    "the licensed work itself must be shared as source under the same license."
)
_RAIL_IF = "allowed, except for the uses the license's use restrictions forbid"
# Attachment A of the CreativeML OpenRAIL-M (and of the Open RAIL++-M that SDXL uses), in
# short: what the model and anything made from it may not be used for. The license binds
# whoever uses the model, so the app shows it where images are made, not only in Discover.
RAIL_M_USE_RESTRICTIONS: tuple[str, ...] = (
    "anything that breaks the law",
    "exploiting or harming minors",
    "false information meant to harm others",
    "personal information that can be used to harm someone",
    "defaming, disparaging or harassing others",
    "fully automated decisions that hurt someone's legal rights",
    "discriminating against or harming people for their social behaviour or personal traits",
    "exploiting the vulnerabilities of a group (age, social, physical or mental traits)",
    "discriminating against people for legally protected characteristics",
    "medical advice or interpreting medical results",
    "justice, law enforcement, immigration or asylum decisions (e.g. predicting crime)",
)
_RAIL_SUMMARY = (
    "Use, modify and share it, also commercially, but not for the harmful uses the license "
    "lists. Anyone you share it or a derivative with must get a copy of the license and the "
    "same use restrictions; mark files you changed."
)
_LLAMA_MAU = (
    "companies whose products had more than 700 million monthly active users on the model's "
    "release date need a separate license from Meta"
)
_LLAMA_3X_SUMMARY = (
    "Follow Meta's Acceptable Use Policy, include the license and its notice with copies, and "
    "show “Built with Llama”. Models trained or fine-tuned from it must have names that start "
    "with “Llama”."
)
_LLAMA_EU = (
    " For its multimodal (vision) models, the license grants no rights to people living in, or "
    "companies based in, the EU; end users of products built on them are not affected."
)
_QWEN_MAU = (
    "products or services with more than 100 million monthly active users need a license "
    "from Alibaba Cloud"
)

_TABLE: tuple[LicenseInfo, ...] = (
    # -- Permissive software licenses -------------------------------------------------------
    _license(
        "apache-2.0",
        "Apache License 2.0",
        _P,
        _YES,
        f"{_FREE} Keep the license and any NOTICE file, and mark files you changed.",
        obligations=_APACHE_LIKE,
        url="https://www.apache.org/licenses/LICENSE-2.0",
    ),
    _license(
        "mit",
        "MIT License",
        _P,
        _YES,
        f"{_FREE} {_KEEP_NOTICE}",
        obligations=_NOTICE,
        url="https://spdx.org/licenses/MIT.html",
    ),
    _license(
        "bsd",
        "BSD license family",
        _P,
        _YES,
        f"{_FREE} {_KEEP_NOTICE} Most variants also forbid using the authors' names to promote "
        "your product.",
        obligations=_NOTICE,
    ),
    _license(
        "bsd-2-clause",
        'BSD 2-Clause "Simplified" License',
        _P,
        _YES,
        f"{_FREE} {_KEEP_NOTICE}",
        obligations=_NOTICE,
        url="https://spdx.org/licenses/BSD-2-Clause.html",
    ),
    _license(
        "bsd-3-clause",
        'BSD 3-Clause "New" or "Revised" License',
        _P,
        _YES,
        f"{_FREE} {_KEEP_NOTICE} Don't use the authors' names to promote your product.",
        obligations=(*_NOTICE, "no endorsement"),
        url="https://spdx.org/licenses/BSD-3-Clause.html",
    ),
    _license(
        "bsd-3-clause-clear",
        "BSD 3-Clause Clear License",
        _P,
        _YES,
        f"{_FREE} {_KEEP_NOTICE} Don't use the authors' names to promote your product; "
        "no patent rights are granted.",
        obligations=(*_NOTICE, "no endorsement"),
        url="https://spdx.org/licenses/BSD-3-Clause-Clear.html",
    ),
    _license(
        "isc",
        "ISC License",
        _P,
        _YES,
        f"{_FREE} {_KEEP_NOTICE}",
        obligations=_NOTICE,
        url="https://spdx.org/licenses/ISC.html",
    ),
    _license(
        "postgresql",
        "PostgreSQL License",
        _P,
        _YES,
        f"{_FREE} {_KEEP_NOTICE}",
        obligations=_NOTICE,
        url="https://spdx.org/licenses/PostgreSQL.html",
    ),
    _license(
        "ncsa",
        "University of Illinois/NCSA Open Source License",
        _P,
        _YES,
        f"{_FREE} {_KEEP_NOTICE} Don't use the authors' names to promote your product.",
        obligations=(*_NOTICE, "no endorsement"),
        url="https://spdx.org/licenses/NCSA.html",
    ),
    _license(
        "zlib",
        "zlib License",
        _P,
        _YES,
        f"{_FREE} Don't misrepresent where it came from, mark altered versions as such, and keep "
        "the notice in source copies.",
        obligations=("include license", "state changes"),
        url="https://spdx.org/licenses/Zlib.html",
    ),
    _license(
        "bsl-1.0",
        "Boost Software License 1.0",
        _P,
        _YES,
        f"{_FREE} Keep the license text in copies of the source; compiled copies need no notice.",
        obligations=("include license",),
        url="https://spdx.org/licenses/BSL-1.0.html",
    ),
    _license(
        "afl-3.0",
        "Academic Free License v3.0",
        _P,
        _YES,
        f"{_FREE} Keep the license and the authors' notices in what you share.",
        obligations=_NOTICE,
        url="https://spdx.org/licenses/AFL-3.0.html",
    ),
    _license(
        "artistic-2.0",
        "Artistic License 2.0",
        _P,
        _YES,
        "Free to use and share, also commercially. If you share a modified version, document "
        "your changes and make it freely available or give it a different name.",
        obligations=("include license", "state changes"),
        url="https://spdx.org/licenses/Artistic-2.0.html",
    ),
    _license(
        "ecl-2.0",
        "Educational Community License v2.0",
        _P,
        _YES,
        f"{_FREE} Keep the license and notices, and mark files you changed.",
        obligations=_APACHE_LIKE,
        url="https://spdx.org/licenses/ECL-2.0.html",
    ),
    _license(
        "lppl-1.3c",
        "LaTeX Project Public License v1.3c",
        _P,
        _YES,
        "Free to use and share, also commercially. If you share modified files, mark them as "
        "changed (renaming them where the license asks) and keep the license.",
        obligations=("include license", "state changes"),
        url="https://www.latex-project.org/lppl/lppl-1-3c/",
    ),
    _license(
        "apple-ascl",
        "Apple Sample Code License",
        _P,
        _YES,
        f"{_FREE} Keep Apple's notice when sharing it unmodified and don't use Apple's name to "
        "promote your product; no patent rights are granted.",
        obligations=("include license", "no endorsement"),
    ),
    _license(
        "openmdw-1.0",
        "Open Model, Data & Weights License 1.0",
        _P,
        _YES,
        "Free to use, modify and share the model, its data and code, also commercially; outputs "
        "are unrestricted. Keep the license and notices in what you share.",
        obligations=("include license",),
        url="https://openmdw.ai/",
    ),
    _license(
        "openmdw-1.1",
        "Open Model, Data & Weights License 1.1",
        _P,
        _YES,
        "Free to use, modify and share the model, its data and code, also commercially; outputs "
        "are unrestricted. Keep the license and notices in what you share.",
        obligations=("include license",),
        url="https://openmdw.ai/",
    ),
    # -- Public domain -------------------------------------------------------------------------
    _license(
        "unlicense",
        "The Unlicense",
        _P,
        _YES,
        _PUBLIC_DOMAIN,
        url="https://unlicense.org/",
    ),
    _license(
        "wtfpl",
        "Do What The F*ck You Want To Public License",
        _P,
        _YES,
        _PUBLIC_DOMAIN,
        url="https://spdx.org/licenses/WTFPL.html",
    ),
    _license(
        "cc0-1.0",
        "Creative Commons Zero v1.0 Universal",
        _P,
        _YES,
        _PUBLIC_DOMAIN,
        url="https://creativecommons.org/publicdomain/zero/1.0/",
    ),
    _license(
        "pddl",
        "Open Data Commons Public Domain Dedication and License",
        _P,
        _YES,
        _PUBLIC_DOMAIN,
        url="https://opendatacommons.org/licenses/pddl/",
    ),
    # -- Copyleft software licenses -----------------------------------------------------------
    _license(
        "gpl",
        "GNU General Public License family",
        _C,
        _YES,
        _GPL,
        obligations=_GPL_LIKE,
        url="https://www.gnu.org/licenses/licenses.html",
    ),
    _license(
        "gpl-2.0",
        "GNU General Public License v2.0",
        _C,
        _YES,
        _GPL,
        obligations=_GPL_LIKE,
        url="https://www.gnu.org/licenses/old-licenses/gpl-2.0.html",
    ),
    _license(
        "gpl-3.0",
        "GNU General Public License v3.0",
        _C,
        _YES,
        _GPL,
        obligations=_GPL_LIKE,
        url="https://www.gnu.org/licenses/gpl-3.0.html",
    ),
    _license(
        "agpl-3.0",
        "GNU Affero General Public License v3.0",
        _C,
        _YES,
        f"{_GPL} Letting people use it over a network counts as sharing: offer them the source.",
        obligations=(*_GPL_LIKE, "network use is distribution"),
        url="https://www.gnu.org/licenses/agpl-3.0.html",
    ),
    _license(
        "lgpl",
        "GNU Lesser General Public License family",
        _C,
        _YES,
        _LGPL,
        obligations=_GPL_LIKE,
        url="https://www.gnu.org/licenses/licenses.html",
    ),
    _license(
        "lgpl-2.1",
        "GNU Lesser General Public License v2.1",
        _C,
        _YES,
        _LGPL,
        obligations=_GPL_LIKE,
        url="https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html",
    ),
    _license(
        "lgpl-3.0",
        "GNU Lesser General Public License v3.0",
        _C,
        _YES,
        _LGPL,
        obligations=_GPL_LIKE,
        url="https://www.gnu.org/licenses/lgpl-3.0.html",
    ),
    _license(
        "lgpl-lr",
        "Lesser General Public License For Linguistic Resources",
        _C,
        _YES,
        "Free to use, also commercially. If you share a modified version of the linguistic "
        "resource, share it under the same license, in a form others can edit.",
        obligations=("share-alike", "disclose source", "include license"),
        url="https://spdx.org/licenses/LGPLLR.html",
    ),
    _license(
        "gfdl",
        "GNU Free Documentation License family",
        _C,
        _YES,
        "Free to copy and change, also commercially. Modified versions must stay under the same "
        "license, credit the authors, record the changes and come in an editable format.",
        obligations=(
            "share-alike",
            "disclose source",
            "include license",
            "attribution",
            "state changes",
        ),
        url="https://www.gnu.org/licenses/fdl-1.3.html",
    ),
    _license(
        "mpl-2.0",
        "Mozilla Public License 2.0",
        _C,
        _YES,
        "Free to use, also commercially, and to combine with code under other licenses. Files "
        "you change stay under the MPL and their source must be shared when you distribute them.",
        obligations=("share-alike", "disclose source", "include license"),
        url="https://www.mozilla.org/en-US/MPL/2.0/",
    ),
    _license(
        "epl-1.0",
        "Eclipse Public License 1.0",
        _C,
        _YES,
        "Free to use, also commercially. If you distribute changes to the covered code, make "
        "their source available under the same license.",
        obligations=("share-alike", "disclose source", "include license"),
        url="https://spdx.org/licenses/EPL-1.0.html",
    ),
    _license(
        "epl-2.0",
        "Eclipse Public License 2.0",
        _C,
        _YES,
        "Free to use, also commercially. If you distribute changes to the covered code, make "
        "their source available under the same license.",
        obligations=("share-alike", "disclose source", "include license"),
        url="https://www.eclipse.org/legal/epl-2.0/",
    ),
    _license(
        "eupl-1.1",
        "European Union Public License 1.1",
        _C,
        _YES,
        "Free to use, also commercially. Works based on it must be shared with their source "
        "under the same (or a listed compatible) license; offering it online counts as sharing.",
        obligations=(*_GPL_LIKE, "network use is distribution", "attribution"),
        url="https://spdx.org/licenses/EUPL-1.1.html",
    ),
    _license(
        "eupl-1.2",
        "European Union Public License 1.2",
        _C,
        _YES,
        "Free to use, also commercially. Works based on it must be shared with their source "
        "under the same (or a listed compatible) license; offering it online counts as sharing.",
        obligations=(*_GPL_LIKE, "network use is distribution", "attribution"),
        url="https://spdx.org/licenses/EUPL-1.2.html",
    ),
    _license(
        "osl-3.0",
        "Open Software License 3.0",
        _C,
        _YES,
        "Free to use, also commercially. Works based on it must be shared with their source "
        "under the same license, and offering it over a network counts as sharing.",
        obligations=(*_GPL_LIKE, "network use is distribution", "attribution"),
        url="https://spdx.org/licenses/OSL-3.0.html",
    ),
    _license(
        "ms-pl",
        "Microsoft Public License",
        _C,
        _YES,
        "Free to use, also commercially. Keep the notices; source code you share must stay "
        "under this license, while compiled forms may use a compatible one.",
        obligations=("share-alike", "include license", "attribution"),
        url="https://spdx.org/licenses/MS-PL.html",
    ),
    _license(
        "ofl-1.1",
        "SIL Open Font License 1.1",
        _C,
        _IF,
        "Free to use, embed and bundle the fonts. Modified fonts must stay under the same "
        "license and may not use the original's reserved font names.",
        condition="the fonts may be sold bundled with other software, but not on their own",
        obligations=("share-alike", "include license"),
        url="https://spdx.org/licenses/OFL-1.1.html",
    ),
    # -- Data licenses -------------------------------------------------------------------------
    _license(
        "odc-by",
        "Open Data Commons Attribution License",
        _P,
        _YES,
        "Free to use, adapt and share the data, also commercially. Credit the source and keep "
        "the license notice.",
        obligations=_NOTICE,
        url="https://opendatacommons.org/licenses/by/",
    ),
    _license(
        "odbl",
        "Open Database License",
        _C,
        _YES,
        "Free to use the data, also commercially. Credit the source; if you publicly share an "
        "adapted database, share it under the same license.",
        obligations=("attribution", "share-alike", "include license"),
        url="https://opendatacommons.org/licenses/odbl/",
    ),
    _license(
        "cdla-permissive-1.0",
        "Community Data License Agreement - Permissive 1.0",
        _P,
        _YES,
        "Free to use, change and share the data, also commercially; results such as trained "
        "models carry no obligations. When you share the data, include the agreement and keep "
        "its notices.",
        obligations=_NOTICE,
        url="https://cdla.dev/permissive-1-0/",
    ),
    _license(
        "cdla-permissive-2.0",
        "Community Data License Agreement - Permissive 2.0",
        _P,
        _YES,
        "Free to use, change and share the data, also commercially; results such as trained "
        "models carry no obligations. When you share the data, include the agreement or a link "
        "to it.",
        obligations=("include license",),
        url="https://cdla.dev/permissive-2-0/",
    ),
    _license(
        "cdla-sharing-1.0",
        "Community Data License Agreement - Sharing 1.0",
        _C,
        _YES,
        "Free to use the data, also commercially; results such as trained models carry no "
        "obligations. If you share the data or a changed version, share it under the same "
        "agreement.",
        obligations=("share-alike", "include license", "attribution"),
        url="https://cdla.dev/sharing-1-0/",
    ),
    _license(
        "c-uda",
        "Computational Use of Data Agreement",
        _R,
        _IF,
        "The data may be used only for computational analysis, such as training models; what "
        "that produces is yours to use. If you share the data, share it under the same agreement.",
        condition="the data itself may be used only for computational analysis",
        obligations=("computational use only", "include license"),
        url="https://spdx.org/licenses/C-UDA-1.0.html",
    ),
    _license(
        "etalab-2.0",
        "Etalab Open License 2.0",
        _P,
        _YES,
        "Free to reuse, also commercially. Credit the source and the date it was last updated.",
        obligations=("attribution",),
        url="https://spdx.org/licenses/etalab-2.0.html",
    ),
    # -- Creative Commons ----------------------------------------------------------------------
    _license(
        "cc",
        "Creative Commons license family",
        LicenseCategory.UNKNOWN,
        CommercialUse.UNKNOWN,
        "Some Creative Commons license, but the card doesn't say which. Check the model card: "
        "some CC licenses forbid commercial use (NC) or sharing modified versions (ND).",
        url="https://creativecommons.org/licenses/",
    ),
    _creative_commons("by", "2.0"),
    _creative_commons("by", "2.5"),
    _creative_commons("by", "3.0"),
    _creative_commons("by", "4.0"),
    _creative_commons("by-sa", "3.0"),
    _creative_commons("by-sa", "4.0"),
    _creative_commons("by-nd", "4.0"),
    _creative_commons("by-nc", "2.0"),
    _creative_commons("by-nc", "3.0"),
    _creative_commons("by-nc", "4.0"),
    _creative_commons("by-nc-nd", "3.0"),
    _creative_commons("by-nc-nd", "4.0"),
    _creative_commons("by-nc-sa", "2.0"),
    _creative_commons("by-nc-sa", "3.0"),
    _creative_commons("by-nc-sa", "4.0"),
    # -- Responsible AI licenses (use-based restrictions) -------------------------------------
    _license(
        "openrail",
        "OpenRAIL license family",
        _R,
        _IF,
        "Use, modify and share it, also commercially, but not for the harmful uses the license "
        "lists. Anyone you share it or a derivative with must get the same use restrictions.",
        condition=_RAIL_IF,
        obligations=("acceptable-use policy", "pass on use restrictions", "include license"),
        url="https://www.licenses.ai/blog/2022/8/18/naming-convention-of-responsible-ai-licenses",
    ),
    _license(
        "bigscience-openrail-m",
        "BigScience OpenRAIL-M",
        _R,
        _IF,
        _RAIL_SUMMARY,
        condition=_RAIL_IF,
        obligations=_RAIL,
        url="https://www.licenses.ai/blog/2022/8/26/bigscience-open-rail-m-license",
    ),
    _license(
        "creativeml-openrail-m",
        "CreativeML OpenRAIL-M",
        _R,
        _IF,
        _RAIL_SUMMARY,
        condition=_RAIL_IF,
        obligations=_RAIL,
        url="https://huggingface.co/spaces/CompVis/stable-diffusion-license",
        use_restrictions=RAIL_M_USE_RESTRICTIONS,
    ),
    _license(
        "openrail++",
        "CreativeML Open RAIL++-M License",
        _R,
        _IF,
        _RAIL_SUMMARY,
        condition=_RAIL_IF,
        obligations=_RAIL,
        url="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/LICENSE.md",
        use_restrictions=RAIL_M_USE_RESTRICTIONS,
    ),
    _license(
        "bigscience-bloom-rail-1.0",
        "BigScience BLOOM RAIL 1.0",
        _R,
        _IF,
        _RAIL_SUMMARY,
        condition=_RAIL_IF,
        obligations=_RAIL,
        url="https://huggingface.co/spaces/bigscience/license",
    ),
    _license(
        "bigcode-openrail-m",
        "BigCode OpenRAIL-M v1",
        _R,
        _IF,
        _RAIL_SUMMARY,
        condition=_RAIL_IF,
        obligations=_RAIL,
        url="https://huggingface.co/spaces/bigcode/bigcode-model-license-agreement",
    ),
    _license(
        "deepseek",
        "DeepSeek License Agreement",
        _R,
        _IF,
        "Use, modify and share it, also commercially, but not for the uses the license forbids; "
        "pass those restrictions and a copy of the license on to anyone you share it with. "
        "(Newer DeepSeek models such as DeepSeek-R1 use the MIT License instead.)",
        condition=_RAIL_IF,
        obligations=_RAIL,
        url="https://github.com/deepseek-ai/DeepSeek-LLM/blob/main/LICENSE-MODEL",
    ),
    # -- Vendor community licenses ---------------------------------------------------------
    _license(
        "llama2",
        "Llama 2 Community License Agreement",
        _R,
        _IF,
        "Follow Meta's Acceptable Use Policy and include the license and its notice with "
        "copies. Don't use Llama 2 or its outputs to improve other large language models.",
        condition=_LLAMA_MAU,
        obligations=(
            "acceptable-use policy",
            "include license",
            "attribution",
            "don't improve other models",
        ),
        url="https://github.com/meta-llama/llama-models/blob/main/models/llama2/LICENSE",
    ),
    _license(
        "llama3",
        "Meta Llama 3 Community License Agreement",
        _R,
        _IF,
        "Follow Meta's Acceptable Use Policy, include the license, show “Built with Meta Llama "
        "3” and start the names of models trained from it with “Llama 3”. Don't use it or its "
        "outputs to improve non-Llama large language models.",
        condition=_LLAMA_MAU,
        obligations=(*_LLAMA_3X, "don't improve other models"),
        url="https://github.com/meta-llama/llama-models/blob/main/models/llama3/LICENSE",
    ),
    _license(
        "llama3.1",
        "Llama 3.1 Community License Agreement",
        _R,
        _IF,
        _LLAMA_3X_SUMMARY,
        condition=_LLAMA_MAU,
        obligations=_LLAMA_3X,
        url="https://github.com/meta-llama/llama-models/blob/main/models/llama3_1/LICENSE",
    ),
    _license(
        "llama3.2",
        "Llama 3.2 Community License Agreement",
        _R,
        _IF,
        _LLAMA_3X_SUMMARY + _LLAMA_EU,
        condition=_LLAMA_MAU,
        obligations=_LLAMA_3X,
        url="https://github.com/meta-llama/llama-models/blob/main/models/llama3_2/LICENSE",
    ),
    _license(
        "llama3.3",
        "Llama 3.3 Community License Agreement",
        _R,
        _IF,
        _LLAMA_3X_SUMMARY,
        condition=_LLAMA_MAU,
        obligations=_LLAMA_3X,
        url="https://github.com/meta-llama/llama-models/blob/main/models/llama3_3/LICENSE",
    ),
    _license(
        "llama4",
        "Llama 4 Community License Agreement",
        _R,
        _IF,
        _LLAMA_3X_SUMMARY + _LLAMA_EU,
        condition=_LLAMA_MAU,
        obligations=_LLAMA_3X,
        url="https://github.com/meta-llama/llama-models/blob/main/models/llama4/LICENSE",
    ),
    _license(
        "gemma",
        "Gemma Terms of Use",
        _R,
        _IF,
        "Follow Google's Gemma Prohibited Use Policy and pass its restrictions on to anyone you "
        "share the model or a derivative with. Include the terms and a notice with copies, and "
        "mark files you changed.",
        condition="allowed, provided the use follows Google's Gemma Prohibited Use Policy",
        obligations=(*_RAIL, "attribution"),
        url="https://ai.google.dev/gemma/terms",
    ),
    _license(
        "grok2-community",
        "Grok 2 Community License Agreement",
        _R,
        _IF,
        "Follow xAI's Acceptable Use Policy and include the license with copies. Don't use the "
        "model or its outputs to train or improve other general-purpose AI models; only "
        "fine-tuning Grok 2 itself is allowed.",
        condition="allowed only within the license's terms and xAI's Acceptable Use Policy; "
        "read the license before commercial use",
        obligations=("acceptable-use policy", "include license", "don't improve other models"),
        url="https://huggingface.co/xai-org/grok-2/blob/main/LICENSE",
    ),
    # Common `license_name`s of `license: other` cards, so those resolve too.
    _license(
        "qwen",
        "Qwen License Agreement",
        _R,
        _IF,
        "Include the license with copies, and show “Built with Qwen” or “Improved using Qwen” "
        "for products or models made with it.",
        condition=_QWEN_MAU,
        obligations=("include license", "attribution"),
        url="https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/LICENSE",
    ),
    _license(
        "tongyi-qianwen",
        "Tongyi Qianwen License Agreement",
        _R,
        _IF,
        "Include the license with copies and credit Tongyi Qianwen. Don't use the model or its "
        "outputs to improve other large language models.",
        condition=_QWEN_MAU,
        obligations=("include license", "attribution", "don't improve other models"),
    ),
    _license(
        "stabilityai-ai-community",
        "Stability AI Community License",
        _R,
        _IF,
        "Follow Stability AI's Acceptable Use Policy, include the license with copies, and show "
        "“Powered by Stability AI” in products built with it.",
        condition="free for individuals and organisations with less than US$1 million in annual "
        "revenue; above that you need an Enterprise license from Stability AI",
        obligations=("acceptable-use policy", "include license", "attribution"),
        url="https://stability.ai/community-license-agreement",
    ),
    # -- Non-commercial and research-only licenses ------------------------------------------
    _license(
        "deepfloyd-if-license",
        "DeepFloyd IF Research License Agreement",
        _NC,
        _NO,
        "For non-commercial research only. Include the license with any copies you share.",
        obligations=_RESEARCH,
        url="https://huggingface.co/spaces/DeepFloyd/deepfloyd-if-license",
    ),
    _license(
        "fair-noncommercial-research-license",
        "FAIR Noncommercial Research License",
        _NC,
        _NO,
        "For non-commercial research only, following Meta's Acceptable Use Policy. Include the "
        "license with any copies or derivatives you share.",
        obligations=(*_RESEARCH, "acceptable-use policy"),
    ),
    _license(
        "apple-amlr",
        "Apple Machine Learning Research Model License",
        _NC,
        _NO,
        "For non-commercial research only; this extends to models fine-tuned from it. Include "
        "the license and Apple's notice with copies you share.",
        obligations=(*_RESEARCH, "attribution"),
    ),
    _license(
        "intel-research",
        "Intel Research Use License Agreement",
        _NC,
        _NO,
        "For non-commercial research only. Include the license with any copies you share.",
        obligations=_RESEARCH,
    ),
    _license(
        "qwen-research",
        "Qwen Research License Agreement",
        _NC,
        _NO,
        "For non-commercial research only; commercial use needs a license from Alibaba Cloud. "
        "Include the license with any copies you share.",
        obligations=_RESEARCH,
        url="https://huggingface.co/Qwen/Qwen2.5-3B-Instruct/blob/main/LICENSE",
    ),
    _license(
        "flux-1-dev-non-commercial-license",
        "FLUX.1 [dev] Non-Commercial License",
        _NC,
        _NO,
        "The model may be used and changed for non-commercial purposes only, though the images "
        "it generates may be used commercially. Include the license and its notice with copies.",
        obligations=("non-commercial only", "include license", "attribution"),
        url="https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md",
    ),
    _license(
        "h-research",
        "H Research License",
        LicenseCategory.CUSTOM,
        CommercialUse.UNKNOWN,
        "A research license from H Company. Read its text on the model page before using the "
        "model for anything beyond research.",
    ),
    # -- No license, or a custom one -----------------------------------------------------------
    _license(
        "other",
        "Custom license",
        LicenseCategory.CUSTOM,
        CommercialUse.UNKNOWN,
        "A custom license. Read the license text linked from the model card (or the "
        "repository's LICENSE file) to see what is allowed.",
    ),
    _license(
        "unknown",
        "Unknown",
        LicenseCategory.UNKNOWN,
        CommercialUse.UNKNOWN,
        "No license was declared, so by default no rights are granted to use, modify or share "
        "the model. Ask the author before relying on it.",
    ),
)

_BY_ID: dict[str, LicenseInfo] = {info.id: info for info in _TABLE}
if len(_BY_ID) != len(_TABLE):  # a repeated id would silently shadow an entry
    raise ValueError("app.licenses: the license table repeats an id")

# Spellings seen in `license_name` for licenses the table holds under another id.
_ALIASES = {
    "deepseek-license": "deepseek",
    "stabilityai-community": "stabilityai-ai-community",
    "lgpllr": "lgpl-lr",
}


def _normalize(license_id: str | None) -> str:
    """Lower-case and trim an id, dropping the "license:" prefix of Hub tags."""
    key = (license_id or "").strip().lower()
    key = key.removeprefix("license:").strip()
    return _ALIASES.get(key, key)


def license_info(
    license_id: str | None,
    *,
    license_name: str | None = None,
    license_link: str | None = None,
) -> LicenseInfo:
    """Describe the license a model card declares.

    Args:
        license_id: the card's `license` field (or a Hub tag such as "license:mit"); case and
            surrounding whitespace are ignored. None or "" mean no license was declared.
        license_name: the card's `license_name`, used with `license: other`. When it names a
            license in the table (e.g. "deepseek"), that entry is returned; otherwise it
            becomes the display name.
        license_link: the card's `license_link`. It becomes the url of "other" and of
            unrecognised ids, and of table entries that have no canonical url. It may be
            relative to the repository (e.g. "LICENSE"); resolving it is the caller's job.

    Returns:
        The table's entry, or for ids it does not know, an entry with category UNKNOWN and
        `is_known` False. Never raises.
    """
    key = _normalize(license_id)
    link = (license_link or "").strip() or None
    if key in ("", "unknown"):
        return _BY_ID["unknown"]
    if key.startswith(CIVITAI_PREFIX):
        return _civitai_permissions(key, link)
    if key == "other":
        named = _BY_ID.get(_normalize(license_name))
        if named is not None and named.id not in ("other", "unknown"):
            return _with_link(named, link)
        name = (license_name or "").strip() or _BY_ID["other"].name
        return dataclasses.replace(_BY_ID["other"], name=name, url=link)
    info = _BY_ID.get(key)
    if info is not None:
        return _with_link(info, link)
    return LicenseInfo(
        id=key,
        name=(license_id or "").strip(),
        category=LicenseCategory.UNKNOWN,
        commercial_use=CommercialUse.UNKNOWN,
        commercial_condition=None,
        summary=f"The license id “{key}” is not recognised. Read the license on the model page "
        "before using the model.",
        obligations=(),
        url=link,
        is_known=False,
    )


def _with_link(info: LicenseInfo, link: str | None) -> LicenseInfo:
    """Give an entry without a canonical url the card's license link, if there is one."""
    if info.url is None and link is not None:
        return dataclasses.replace(info, url=link)
    return info


def known_license_ids() -> tuple[str, ...]:
    """Every id the table knows, in table order (Hub ids plus a few common license names)."""
    return tuple(_BY_ID)


# -- Civitai's permission flags --------------------------------------------------------------
#
# A Civitai model has no license id: its creator ticks permissions (`allowCommercialUse`:
# Image / RentCivit / Rent / Sell, `allowDerivatives`, `allowNoCredit`,
# `allowDifferentLicense`). The Civitai provider writes them as one id, "civitai:" and the
# granted words joined by commas ("civitai:image,rent,derivatives"; "civitai:none" when nothing
# is granted), so every place that shows or filters a license id shows these too.

CIVITAI_PREFIX = "civitai:"
#: The words of a Civitai permissions id, in order, and what each one grants.
CIVITAI_PERMISSIONS: dict[str, str] = {
    "image": "sell images it generates",
    "rentcivit": "run it on Civitai's generation service",
    "rent": "run it on generation services that charge",
    "sell": "sell the model or merges of it",
    "derivatives": "share merges and fine-tunes of it",
    "no-credit": "use it without crediting the creator",
    "different-license": "share merges under other permissions",
}
_CIVITAI_COMMERCIAL = ("image", "rentcivit", "rent", "sell")


def _civitai_permissions(key: str, link: str | None) -> LicenseInfo:
    """The `LicenseInfo` of a "civitai:…" id (unknown words are ignored)."""
    granted = {word.strip() for word in key.removeprefix(CIVITAI_PREFIX).split(",")}
    granted &= set(CIVITAI_PERMISSIONS)
    words = [word for word in CIVITAI_PERMISSIONS if word in granted]
    commercial = [word for word in _CIVITAI_COMMERCIAL if word in granted]
    obligations: list[str] = []
    if not commercial:
        use, condition = CommercialUse.NO, None
        category = LicenseCategory.NON_COMMERCIAL
        obligations.append("non-commercial only")
    elif len(commercial) == len(_CIVITAI_COMMERCIAL):
        use, condition = CommercialUse.YES, None
        category = LicenseCategory.USE_RESTRICTED
    else:
        use = CommercialUse.CONDITIONAL
        condition = "only to " + ", ".join(CIVITAI_PERMISSIONS[word] for word in commercial)
        category = LicenseCategory.USE_RESTRICTED
    if "no-credit" not in granted:
        obligations.append("attribution")
    if "derivatives" not in granted:
        obligations.append("no derivatives")
    elif "different-license" not in granted:
        obligations.append("share-alike")
    allowed = "; ".join(CIVITAI_PERMISSIONS[word] for word in words) or "nothing beyond use"
    refused = [CIVITAI_PERMISSIONS[w] for w in CIVITAI_PERMISSIONS if w not in granted]
    summary = f"The creator allows: {allowed}."
    if refused:
        summary += f" Not allowed: {'; '.join(refused)}."
    summary += " The base model's own license applies as well."
    return LicenseInfo(
        id=CIVITAI_PREFIX + (",".join(words) or "none"),
        name="Civitai permissions",
        category=category,
        commercial_use=use,
        commercial_condition=condition,
        summary=summary,
        obligations=tuple(obligations),
        url=link,
        is_known=True,
    )
