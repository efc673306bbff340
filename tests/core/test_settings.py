"""One settings object: flags over ALABEL_* environment over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.settings import Settings, load_settings


def test_defaults_bind_servers_to_loopback() -> None:
    settings = load_settings({}, {})
    assert settings.host == "127.0.0.1"
    assert settings.registry_port == 50051
    assert settings.postgres_dsn == ""  # empty: the embedded Postgres


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    environ = {"ALABEL_REGISTRY_PORT": "6000", "ALABEL_LOG_LEVEL": "DEBUG"}
    settings = load_settings({"registry_port": 7000, "orchestrator_port": None}, environ)
    assert settings.registry_port == 7000  # flag wins
    assert settings.log_level == "DEBUG"  # from the environment
    assert settings.orchestrator_port == 50052  # None means the flag was not given


def test_environment_strings_are_parsed_to_field_types() -> None:
    settings = load_settings(
        {},
        {
            "ALABEL_SHUTDOWN_GRACE_S": "2.5",
            "ALABEL_DATA_DIR": "~/labels",
            "ALABEL_MODELS_DIR": "/models",
        },
    )
    assert settings.shutdown_grace_s == 2.5
    assert settings.data_dir == Path("~/labels").expanduser()
    assert settings.models_dir == Path("/models")


def test_unknown_environment_variables_are_ignored() -> None:
    assert load_settings({}, {"ALABEL_NOT_A_SETTING": "x"}) == load_settings({}, {})


def test_unknown_flag_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        load_settings({"not_a_setting": 1}, {})


def test_unparsable_value_names_the_setting() -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_settings({}, {"ALABEL_REGISTRY_PORT": "fifty"})
    assert caught.value.violations[0].field == "registry_port"
    assert "expects int" in caught.value.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"registry_port": 70000}, "registry_port"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
        ({"max_concurrent_rpcs": 0}, "max_concurrent_rpcs"),
        ({"shutdown_grace_s": -1.0}, "shutdown_grace_s"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"log_format": "xml"}, "log_format"),
        ({"embedding_dimension": 0}, "embedding_dimension"),
    ],
)
def test_out_of_range_settings_are_refused(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Settings().replace(**changes)
    assert caught.value.violations[0].field == field


def test_embedding_dimension_is_not_given_unless_set() -> None:
    # None: the registry reads its recorded dimension, or takes the served DINOv2's.
    assert load_settings({}, {}).embedding_dimension is None
    assert load_settings({}, {"ALABEL_EMBEDDING_DIMENSION": "32"}).embedding_dimension == 32


def test_an_empty_environment_value_of_an_optional_setting_means_not_given() -> None:
    # How `alabel up` hands "not given" to the servers it starts (ALABEL_X="").
    settings = load_settings({}, {"ALABEL_EMBEDDING_DIMENSION": "", "ALABEL_MODELS_DIR": ""})
    assert settings.embedding_dimension is None
    assert settings.models_dir is None
