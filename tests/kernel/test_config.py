"""Configuration: files, profiles, environment, secret files; bad keys stop start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.kernel.config import ConfigError, Secret, load_settings


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "default.toml").write_text('data_dir = "./data"\n[server]\nport = 8000\n')
    (directory / "staging.toml").write_text("[server]\nport = 8100\nworkers = 4\n")
    return directory


def test_the_shipped_defaults_load() -> None:
    settings = load_settings({})
    assert settings.server.port == 8000
    assert settings.server.max_body_bytes == 1_048_576
    assert settings.security.access_token_ttl_seconds == 900
    assert settings.data_dir == "./data"


def test_a_profile_file_overrides_the_defaults(config_dir: Path) -> None:
    settings = load_settings({"TESSERA_PROFILE": "staging"}, config_dir=config_dir)
    assert settings.profile == "staging"
    assert (settings.server.port, settings.server.workers) == (8100, 4)


def test_an_unknown_profile_is_an_error(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match="nosuch"):
        load_settings({"TESSERA_PROFILE": "nosuch"}, config_dir=config_dir)


def test_a_named_config_file_overrides_the_profile(config_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "mine.toml"
    extra.write_text("[server]\nport = 9999\n")
    settings = load_settings(
        {"TESSERA_PROFILE": "staging", "TESSERA_CONFIG": str(extra)}, config_dir=config_dir
    )
    assert (settings.server.port, settings.server.workers) == (9999, 4)


def test_several_config_files_apply_in_order(config_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text("[server]\nport = 9999\nworkers = 3\n")
    (tmp_path / "topology.toml").write_text("[server]\nport = 9100\n")
    names = f"{tmp_path / 'site.toml'}:{tmp_path / 'topology.toml'}"
    settings = load_settings({"TESSERA_CONFIG": names}, config_dir=config_dir)
    assert (settings.server.port, settings.server.workers) == (9100, 3)


def test_environment_variables_override_files_and_are_typed(config_dir: Path) -> None:
    settings = load_settings(
        {
            "TESSERA_SERVER__PORT": "9001",
            "TESSERA_DATA_DIR": "/srv/tessera",
            "TESSERA_DATABASE__ECHO": "true",
        },
        config_dir=config_dir,
    )
    assert settings.server.port == 9001
    assert settings.data_dir == "/srv/tessera"
    assert settings.database.echo is True


def test_a_module_database_can_be_set_from_the_environment(config_dir: Path) -> None:
    settings = load_settings(
        {"TESSERA_DATABASE__MODULES__IDENTITY__URL": "postgresql+asyncpg://db/tessera"}, config_dir=config_dir
    )
    assert settings.database.modules["identity"].url == "postgresql+asyncpg://db/tessera"


def test_secrets_come_from_files(config_dir: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("s3cret-value-from-a-file\n")
    settings = load_settings({"TESSERA_SECURITY__SIGNING_KEY_FILE": str(secret_file)}, config_dir=config_dir)
    assert settings.security.signing_key.reveal() == "s3cret-value-from-a-file"


def test_secrets_never_show_in_reprs(config_dir: Path) -> None:
    settings = load_settings({"TESSERA_SECURITY__SIGNING_KEY": "hunter2-hunter2"}, config_dir=config_dir)
    assert "hunter2" not in repr(settings)
    assert isinstance(settings.security.signing_key, Secret)


def test_a_missing_secret_file_names_the_variable(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match="TESSERA_SECURITY__SIGNING_KEY_FILE"):
        load_settings({"TESSERA_SECURITY__SIGNING_KEY_FILE": "/nonexistent/key"}, config_dir=config_dir)


def test_an_unknown_key_names_the_key(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key"):
        load_settings({"TESSERA_SERVER__PROT": "1"}, config_dir=config_dir)


def test_an_unknown_key_in_a_file_names_the_key(config_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "typo.toml"
    extra.write_text("[securty]\nissuer = 'x'\n")
    with pytest.raises(ConfigError, match="securty: unknown key"):
        load_settings({"TESSERA_CONFIG": str(extra)}, config_dir=config_dir)


def test_a_wrong_type_names_the_key(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.port: Expected `int`"):
        load_settings({"TESSERA_SERVER__PORT": "eighty"}, config_dir=config_dir)
