"""Which hub endpoint wins (--endpoint, the saved one, HF_ENDPOINT, huggingface.co) and why."""

from __future__ import annotations

import pytest

from app.hub.endpoint import DEFAULT_ENDPOINT, EndpointOrigin, choose_endpoint, resolve_endpoint

MIRROR = "https://mirror.example"
SAVED = "https://hub.example"
CLI = "http://127.0.0.1:9000"


def test_nothing_set_is_huggingface() -> None:
    choice = choose_endpoint(None, in_use=DEFAULT_ENDPOINT, environ={})
    assert (choice.url, choice.origin) == (DEFAULT_ENDPOINT, EndpointOrigin.DEFAULT)
    assert "HF_ENDPOINT is not set" in choice.explanation


def test_hf_endpoint_is_used_only_while_nothing_is_saved() -> None:
    env = {"HF_ENDPOINT": MIRROR + "/"}
    choice = choose_endpoint("", in_use=MIRROR, environ=env)
    assert (choice.url, choice.origin) == (MIRROR, EndpointOrigin.ENVIRONMENT)
    assert "because no endpoint is saved here" in choice.explanation
    saved = choose_endpoint(SAVED, in_use=SAVED, environ=env)
    assert (saved.url, saved.origin) == (SAVED, EndpointOrigin.SETTING)
    assert f"HF_ENDPOINT ({MIRROR}) is set but not used" in saved.explanation


def test_endpoint_on_the_command_line_wins_over_both() -> None:
    choice = choose_endpoint(SAVED, in_use=CLI, environ={"HF_ENDPOINT": MIRROR})
    assert (choice.url, choice.origin) == (CLI, EndpointOrigin.OVERRIDE)
    assert choice.explanation.startswith(f"Using {CLI} for this run: it was given with --endpoint")
    assert choice.explanation.endswith(
        "Started without --endpoint, ModelDeck uses the saved endpoint."
    )
    assert f"the saved endpoint ({SAVED}) and HF_ENDPOINT ({MIRROR})" in choice.explanation
    # The same URL as the saved one is no override.
    same = choose_endpoint(SAVED, in_use=SAVED + "/", environ={})
    assert same.origin is EndpointOrigin.SETTING


def test_the_order_is_the_one_resolve_endpoint_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", MIRROR)
    for setting in (SAVED, None):
        assert resolve_endpoint(setting) == choose_endpoint(setting).url
