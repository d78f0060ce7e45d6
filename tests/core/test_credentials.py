"""TokenStore: where the token is kept and which one wins; it never shows in repr or text."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.hub.credentials import (
    KEYRING_SERVICE,
    KEYRING_USERNAME,
    ResolvedToken,
    TokenSource,
    TokenStore,
    hf_cli_token_path,
    redact,
)
from tests.core.conftest import SECRET_TOKEN, MemoryKeyring


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "app-data" / "hf-token")


@pytest.fixture
def cli_token_file(hf_home: Path) -> Path:
    """Where `hf auth login` writes the token for this test's HF_HOME."""
    return hf_home / "token"


# --- without a keyring: the private file ------------------------------------------------


def test_no_keyring_means_the_private_file(store: TokenStore) -> None:
    assert not TokenStore.keyring_available()
    assert store.location is TokenSource.APP_FILE
    assert store.load() is None

    assert store.save(f"  {SECRET_TOKEN}\n") is TokenSource.APP_FILE

    assert store.load() == SECRET_TOKEN  # stripped
    assert store.fallback_file.read_text(encoding="utf-8") == SECRET_TOKEN
    mode = stat.S_IMODE(store.fallback_file.stat().st_mode)
    assert mode == 0o600, oct(mode)


def test_saving_over_a_loose_file_keeps_it_private(store: TokenStore) -> None:
    store.save("hf_first1234567890")
    store.fallback_file.chmod(0o644)  # e.g. copied in by hand, or restored from a backup

    store.save("hf_second1234567890")

    assert store.load() == "hf_second1234567890"
    assert stat.S_IMODE(store.fallback_file.stat().st_mode) & 0o077 == 0


def test_saving_an_empty_token_clears_it(store: TokenStore) -> None:
    store.save(SECRET_TOKEN)

    assert store.save("   ") is TokenSource.APP_FILE

    assert store.load() is None
    assert not store.fallback_file.exists()
    store.clear()  # clearing twice is fine


def test_an_empty_file_is_no_token(store: TokenStore) -> None:
    store.fallback_file.parent.mkdir(parents=True)
    store.fallback_file.write_text("\n  \n", encoding="utf-8")

    assert store.load() is None
    assert store.resolve() == ResolvedToken(None, TokenSource.NONE)


# --- with a keyring -----------------------------------------------------------------------


def test_keyring_is_used_when_it_works(store: TokenStore, memory_keyring: MemoryKeyring) -> None:
    assert TokenStore.keyring_available()
    assert store.location is TokenSource.KEYRING

    assert store.save(SECRET_TOKEN) is TokenSource.KEYRING

    assert memory_keyring.passwords == {(KEYRING_SERVICE, KEYRING_USERNAME): SECRET_TOKEN}
    assert not store.fallback_file.exists()  # never written to disk
    assert store.resolve() == ResolvedToken(SECRET_TOKEN, TokenSource.KEYRING)

    store.clear()
    assert memory_keyring.passwords == {}
    store.clear()  # nothing to delete: no error
    assert store.load() is None


# --- precedence ---------------------------------------------------------------------------


def test_nothing_anywhere(store: TokenStore, hf_home: Path) -> None:
    assert store.resolve() == ResolvedToken(None, TokenSource.NONE)


def test_hf_cli_token_file_is_the_last_resort(store: TokenStore, cli_token_file: Path) -> None:
    cli_token_file.write_text("hf_fromCli1234567890\n", encoding="utf-8")

    assert store.resolve() == ResolvedToken("hf_fromCli1234567890", TokenSource.HF_CLI)


def test_environment_beats_the_hf_cli(
    store: TokenStore, cli_token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_token_file.write_text("hf_fromCli1234567890", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", "  hf_fromEnv1234567890  ")

    assert store.resolve() == ResolvedToken("hf_fromEnv1234567890", TokenSource.ENVIRONMENT)


def test_blank_environment_is_ignored(
    store: TokenStore, cli_token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_token_file.write_text("hf_fromCli1234567890", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", "   ")

    assert store.resolve().source is TokenSource.HF_CLI


def test_saved_token_beats_everything(
    store: TokenStore, cli_token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_token_file.write_text("hf_fromCli1234567890", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnv1234567890")
    store.save(SECRET_TOKEN)

    assert store.resolve() == ResolvedToken(SECRET_TOKEN, TokenSource.APP_FILE)

    store.clear()
    assert store.resolve().source is TokenSource.ENVIRONMENT


def test_saved_keyring_token_beats_everything(
    store: TokenStore,
    cli_token_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnv1234567890")
    store.save(SECRET_TOKEN)

    assert store.resolve() == ResolvedToken(SECRET_TOKEN, TokenSource.KEYRING)


def test_hf_token_path_moves_the_cli_file(
    store: TokenStore, tmp_path: Path, hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere" / "my-token"
    elsewhere.parent.mkdir()
    elsewhere.write_text("hf_elsewhere1234567890", encoding="utf-8")
    (hf_home / "token").write_text("hf_inHome1234567890", encoding="utf-8")
    assert hf_cli_token_path() == hf_home / "token"

    monkeypatch.setenv("HF_TOKEN_PATH", str(elsewhere))

    assert hf_cli_token_path() == elsewhere
    assert store.resolve() == ResolvedToken("hf_elsewhere1234567890", TokenSource.HF_CLI)


def test_an_unreadable_cli_path_is_no_token(
    store: TokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path))  # a folder, not a file

    assert store.resolve() == ResolvedToken(None, TokenSource.NONE)


# --- keeping it secret ------------------------------------------------------------------------


def test_resolved_token_repr_hides_the_value() -> None:
    resolved = ResolvedToken(SECRET_TOKEN, TokenSource.ENVIRONMENT)

    assert SECRET_TOKEN not in repr(resolved)
    assert SECRET_TOKEN not in str(resolved)
    assert "ENVIRONMENT" in repr(resolved)


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (f"Bearer {SECRET_TOKEN}", (), "Bearer hf_***"),
        (f"a {SECRET_TOKEN} b {SECRET_TOKEN}", (SECRET_TOKEN,), "a *** b ***"),
        ("custom secret-value here", ("secret-value",), "custom *** here"),
        ("hf_short stays; hf_ is fine", (), "hf_short stays; hf_ is fine"),
        ("url?token=hf_abcdefgh12345678&x=1", (None, ""), "url?token=hf_***&x=1"),
    ],
)
def test_redact(text: str, secrets: tuple[str | None, ...], expected: str) -> None:
    assert redact(text, *secrets) == expected
