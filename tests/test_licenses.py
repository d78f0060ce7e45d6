"""Tests for app.licenses: the license table and `license_info`'s lookup rules."""

from __future__ import annotations

import dataclasses

import pytest

from app.licenses import (
    OBLIGATION_TAGS,
    CommercialUse,
    LicenseCategory,
    LicenseInfo,
    known_license_ids,
    license_info,
)

REQUIRED_IDS = (
    "apache-2.0",
    "mit",
    "bsd-2-clause",
    "bsd-3-clause",
    "bsd-3-clause-clear",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl",
    "lgpl-2.1",
    "lgpl-3.0",
    "lgpl-lr",
    "agpl-3.0",
    "mpl-2.0",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-2.5",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nd-4.0",
    "openrail",
    "openrail++",
    "creativeml-openrail-m",
    "bigscience-openrail-m",
    "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m",
    "llama2",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "llama4",
    "gemma",
    "deepseek",
    "other",
    "unknown",
)

# The rest of the Hub's license list (docs/hub/repositories-licenses.md).
HUB_IDS = (
    "afl-3.0",
    "artistic-2.0",
    "bsl-1.0",
    "bsd",
    "c-uda",
    "cc",
    "cdla-sharing-1.0",
    "cdla-permissive-1.0",
    "cdla-permissive-2.0",
    "wtfpl",
    "ecl-2.0",
    "epl-1.0",
    "epl-2.0",
    "etalab-2.0",
    "eupl-1.1",
    "eupl-1.2",
    "gfdl",
    "gpl",
    "isc",
    "h-research",
    "intel-research",
    "lppl-1.3c",
    "ms-pl",
    "apple-ascl",
    "apple-amlr",
    "odc-by",
    "odbl",
    "openmdw-1.0",
    "osl-3.0",
    "postgresql",
    "ofl-1.1",
    "ncsa",
    "unlicense",
    "zlib",
    "pddl",
    "deepfloyd-if-license",
    "fair-noncommercial-research-license",
    "grok2-community",
)

ALL_ENTRIES = [license_info(i) for i in known_license_ids()]


def _ids(info: LicenseInfo) -> str:
    return info.id


@pytest.mark.parametrize("license_id", REQUIRED_IDS + HUB_IDS)
def test_hub_id_is_in_the_table(license_id: str) -> None:
    info = license_info(license_id)
    assert license_id in known_license_ids()
    assert info.id == license_id
    assert info.is_known
    assert info.name.strip()
    assert info.summary.strip()


def test_known_ids_are_unique_and_normalized() -> None:
    ids = known_license_ids()
    assert len(ids) == len(set(ids))
    assert all(i == i.strip().lower() for i in ids)


@pytest.mark.parametrize("info", ALL_ENTRIES, ids=_ids)
def test_every_obligation_tag_is_from_the_fixed_set(info: LicenseInfo) -> None:
    assert set(info.obligations) <= OBLIGATION_TAGS
    assert len(set(info.obligations)) == len(info.obligations)


@pytest.mark.parametrize("info", ALL_ENTRIES, ids=_ids)
def test_every_url_is_https(info: LicenseInfo) -> None:
    assert info.url is None or info.url.startswith("https://")


@pytest.mark.parametrize("info", ALL_ENTRIES, ids=_ids)
def test_condition_is_given_exactly_for_conditional_use(info: LicenseInfo) -> None:
    is_conditional = info.commercial_use is CommercialUse.CONDITIONAL
    assert (info.commercial_condition is not None) == is_conditional
    assert info.commercial_condition is None or info.commercial_condition.strip()


@pytest.mark.parametrize(
    ("license_id", "category", "commercial"),
    [
        ("apache-2.0", LicenseCategory.PERMISSIVE, CommercialUse.YES),
        ("mit", LicenseCategory.PERMISSIVE, CommercialUse.YES),
        ("cc0-1.0", LicenseCategory.PERMISSIVE, CommercialUse.YES),
        ("cc-by-4.0", LicenseCategory.PERMISSIVE, CommercialUse.YES),
        ("gpl-3.0", LicenseCategory.COPYLEFT, CommercialUse.YES),
        ("agpl-3.0", LicenseCategory.COPYLEFT, CommercialUse.YES),
        ("lgpl-2.1", LicenseCategory.COPYLEFT, CommercialUse.YES),
        ("mpl-2.0", LicenseCategory.COPYLEFT, CommercialUse.YES),
        ("cc-by-sa-4.0", LicenseCategory.COPYLEFT, CommercialUse.YES),
        ("cc-by-nc-4.0", LicenseCategory.NON_COMMERCIAL, CommercialUse.NO),
        ("cc-by-nc-sa-3.0", LicenseCategory.NON_COMMERCIAL, CommercialUse.NO),
        ("cc-by-nc-nd-4.0", LicenseCategory.NON_COMMERCIAL, CommercialUse.NO),
        ("deepfloyd-if-license", LicenseCategory.NON_COMMERCIAL, CommercialUse.NO),
        ("creativeml-openrail-m", LicenseCategory.USE_RESTRICTED, CommercialUse.CONDITIONAL),
        ("openrail++", LicenseCategory.USE_RESTRICTED, CommercialUse.CONDITIONAL),
        ("bigscience-bloom-rail-1.0", LicenseCategory.USE_RESTRICTED, CommercialUse.CONDITIONAL),
        ("llama2", LicenseCategory.USE_RESTRICTED, CommercialUse.CONDITIONAL),
        ("llama3.1", LicenseCategory.USE_RESTRICTED, CommercialUse.CONDITIONAL),
        ("gemma", LicenseCategory.USE_RESTRICTED, CommercialUse.CONDITIONAL),
        ("deepseek", LicenseCategory.USE_RESTRICTED, CommercialUse.CONDITIONAL),
        ("other", LicenseCategory.CUSTOM, CommercialUse.UNKNOWN),
        ("unknown", LicenseCategory.UNKNOWN, CommercialUse.UNKNOWN),
    ],
)
def test_category_and_commercial_use(
    license_id: str, category: LicenseCategory, commercial: CommercialUse
) -> None:
    info = license_info(license_id)
    assert info.category is category
    assert info.commercial_use is commercial


def test_apache_names_and_links_its_text() -> None:
    info = license_info("apache-2.0")
    assert info.name == "Apache License 2.0"
    assert info.url == "https://www.apache.org/licenses/LICENSE-2.0"
    assert "include license" in info.obligations


def test_agpl_counts_network_use_as_distribution() -> None:
    info = license_info("agpl-3.0")
    assert {"share-alike", "disclose source", "network use is distribution"} <= set(
        info.obligations
    )


def test_non_commercial_cc_is_tagged_non_commercial() -> None:
    for license_id in known_license_ids():
        info = license_info(license_id)
        if license_id.startswith("cc-") and "-nc" in license_id:
            assert "non-commercial only" in info.obligations
            assert info.commercial_use is CommercialUse.NO


@pytest.mark.parametrize("license_id", ["llama3.1", "llama3.2", "llama3.3", "llama4"])
def test_llama_3x_conditions_and_naming(license_id: str) -> None:
    info = license_info(license_id)
    assert info.commercial_condition is not None
    assert "700" in info.commercial_condition
    assert {
        "acceptable-use policy",
        "show 'Built with Llama'",
        "name models 'Llama …'",
    } <= set(info.obligations)


def test_llama2_has_the_mau_condition_and_use_policy() -> None:
    info = license_info("llama2")
    assert info.commercial_condition is not None
    assert "700" in info.commercial_condition
    assert "acceptable-use policy" in info.obligations


def test_rail_licenses_pass_their_restrictions_on() -> None:
    for license_id in ("creativeml-openrail-m", "bigscience-openrail-m", "bigcode-openrail-m"):
        assert "pass on use restrictions" in license_info(license_id).obligations


def test_other_takes_name_and_link_from_the_card() -> None:
    info = license_info(
        "other", license_name="My Model License", license_link="https://example.com/LICENSE"
    )
    assert info.id == "other"
    assert info.name == "My Model License"
    assert info.url == "https://example.com/LICENSE"
    assert info.category is LicenseCategory.CUSTOM
    assert info.commercial_use is CommercialUse.UNKNOWN
    assert info.is_known
    assert "LICENSE" in info.summary


def test_other_without_name_or_link() -> None:
    info = license_info("other")
    assert info.name == "Custom license"
    assert info.url is None


def test_other_keeps_a_relative_link_as_given() -> None:
    assert license_info("other", license_link=" LICENSE.md ").url == "LICENSE.md"


def test_other_with_a_known_license_name_resolves_to_that_license() -> None:
    info = license_info("other", license_name="DeepSeek", license_link="LICENSE")
    assert info.id == "deepseek"
    assert info.category is LicenseCategory.USE_RESTRICTED
    assert info.url is not None
    assert info.url.startswith("https://")


@pytest.mark.parametrize("value", [None, "", "   ", "unknown", "UNKNOWN"])
def test_no_license_means_no_rights(value: str | None) -> None:
    info = license_info(value)
    assert info.id == "unknown"
    assert info.category is LicenseCategory.UNKNOWN
    assert info.commercial_use is CommercialUse.UNKNOWN
    assert "no rights" in info.summary


def test_unrecognised_id() -> None:
    info = license_info("my-weird-license")
    assert not info.is_known
    assert info.id == "my-weird-license"
    assert info.name == "my-weird-license"
    assert info.category is LicenseCategory.UNKNOWN
    assert info.commercial_use is CommercialUse.UNKNOWN
    assert "not recognised" in info.summary
    assert info.url is None


def test_unrecognised_id_keeps_the_card_link() -> None:
    info = license_info("my-weird-license", license_link="https://example.com/terms")
    assert info.url == "https://example.com/terms"


@pytest.mark.parametrize("value", ["Apache-2.0", "  APACHE-2.0\n", "license:apache-2.0"])
def test_ids_are_case_and_whitespace_insensitive(value: str) -> None:
    info = license_info(value)
    assert info.id == "apache-2.0"
    assert info.is_known
    assert info == license_info("apache-2.0")


def test_link_fills_in_only_a_missing_url() -> None:
    assert license_info("apple-amlr").url is None
    assert license_info("apple-amlr", license_link="LICENSE").url == "LICENSE"
    canonical = license_info("mit").url
    assert license_info("mit", license_link="LICENSE").url == canonical


def test_license_info_is_frozen() -> None:
    info = license_info("mit")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "changed"  # type: ignore[misc]


def test_enum_values() -> None:
    assert [c.value for c in LicenseCategory] == [
        "permissive",
        "copyleft",
        "non-commercial",
        "use-restricted",
        "custom",
        "unknown",
    ]
    assert [c.value for c in CommercialUse] == ["yes", "no", "conditional", "unknown"]


@pytest.mark.parametrize("license_id", ["creativeml-openrail-m", "openrail++"])
def test_image_model_rail_licenses_list_their_use_restrictions(license_id: str) -> None:
    restrictions = license_info(license_id).use_restrictions
    assert "exploiting or harming minors" in restrictions
    assert len(restrictions) >= 10


def test_permissive_licenses_have_no_use_restrictions() -> None:
    assert license_info("apache-2.0").use_restrictions == ()
