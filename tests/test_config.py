from pathlib import Path

import pytest

from tfpcourse import config


def test_default_profile_is_full(monkeypatch):
    monkeypatch.delenv("TFPCOURSE_PROFILE", raising=False)
    cfg = config.get_config()
    assert cfg.profile == "full"
    assert cfg.pick(full=2000, smoke=50) == 2000


def test_smoke_profile_picks_the_smoke_value(monkeypatch):
    monkeypatch.setenv("TFPCOURSE_PROFILE", "smoke")
    cfg = config.get_config()
    assert cfg.is_smoke
    assert cfg.pick(full=2000, smoke=50) == 50


def test_profile_value_is_trimmed_and_case_insensitive(monkeypatch):
    monkeypatch.setenv("TFPCOURSE_PROFILE", "  Smoke ")
    assert config.get_config().profile == "smoke"


def test_empty_profile_means_default(monkeypatch):
    monkeypatch.setenv("TFPCOURSE_PROFILE", "")
    assert config.get_config().profile == "full"


def test_unknown_profile_is_a_clear_error_listing_valid_ones(monkeypatch):
    monkeypatch.setenv("TFPCOURSE_PROFILE", "fast")
    with pytest.raises(config.ProfileError) as err:
        config.get_config()
    message = str(err.value)
    assert "TFPCOURSE_PROFILE" in message and "'fast'" in message
    assert "'full'" in message and "'smoke'" in message


def test_config_rejects_unknown_profile_argument():
    with pytest.raises(config.ProfileError, match="profile must be one of"):
        config.Config(profile="medium")
    with pytest.raises(TypeError, match="profile must be a string"):
        config.Config(profile=3)


def test_pick_requires_both_values_by_keyword():
    cfg = config.Config("full")
    with pytest.raises(TypeError):
        cfg.pick(1, 2)  # positional use is an error: the profile names must be visible


def test_data_settings_are_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TFPCOURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TFPCOURSE_DATA_MIRROR", "https://example.org/mirror/")
    cfg = config.get_config()
    assert cfg.data_dir == tmp_path
    assert cfg.data_mirror == "https://example.org/mirror/"


def test_data_dir_expands_the_home_folder(monkeypatch):
    monkeypatch.setenv("TFPCOURSE_DATA_DIR", "~/course-data")
    assert config.get_config().data_dir == Path.home() / "course-data"


def test_unset_data_settings_are_none(monkeypatch):
    monkeypatch.delenv("TFPCOURSE_DATA_DIR", raising=False)
    monkeypatch.delenv("TFPCOURSE_DATA_MIRROR", raising=False)
    cfg = config.get_config()
    assert cfg.data_dir is None and cfg.data_mirror is None
