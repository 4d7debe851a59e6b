"""Settings as composed from its mixins: every field and validator of each reaches Settings."""

from __future__ import annotations

import types

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from schemas.settings import Settings

MIXINS = [
    base
    for base in Settings.__bases__
    if issubclass(base, BaseModel) and not issubclass(base, BaseSettings)
]


def env_name(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    assert isinstance(alias, str)
    return alias


def test_fields_come_in_the_order_of_the_mixins_read_backwards() -> None:
    fields = [name for mixin in reversed(MIXINS) for name in mixin.model_fields]
    assert list(Settings.model_fields) == fields


def test_every_validator_of_a_mixin_reaches_settings() -> None:
    # Two mixins naming a validator alike would leave only one of them on Settings.
    validators = Settings.__pydantic_decorators__.field_validators
    for mixin in MIXINS:
        for name, decorator in mixin.__pydantic_decorators__.field_validators.items():
            assert validators[name].info.fields == decorator.info.fields, (mixin, name)


def test_an_empty_variable_leaves_an_optional_setting_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    optional = [
        name
        for name, info in Settings.model_fields.items()
        if isinstance(info.annotation, types.UnionType) and type(None) in info.annotation.__args__
    ]
    assert "internal_sync_source" in optional
    for name in optional:
        monkeypatch.setenv(env_name(name), " ")
    settings = Settings(_env_file=None)
    assert {name: getattr(settings, name) for name in optional} == dict.fromkeys(optional)


def test_every_list_setting_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    lists = [name for name, info in Settings.model_fields.items() if info.annotation == list[str]]
    assert "cors_origins" in lists
    for name in lists:
        monkeypatch.setenv(env_name(name), " 10.0.0.1, ::1,, ")
    settings = Settings(_env_file=None)
    split = ["10.0.0.1", "::1"]
    assert {name: getattr(settings, name) for name in lists} == {name: split for name in lists}


@pytest.mark.parametrize(
    ("given", "level"), [("debug", "DEBUG"), (" Warn ", "WARNING"), ("fatal", "CRITICAL")]
)
def test_a_log_level_takes_any_case_and_loggings_aliases(
    monkeypatch: pytest.MonkeyPatch, given: str, level: str
) -> None:
    monkeypatch.setenv("SYNCBUS_LOG_LEVEL", given)
    assert Settings(DATABASE_URL="postgresql://syncbus@127.0.0.1/syncbus").log_level == level
