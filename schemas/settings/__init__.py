"""Runtime settings, read from the environment (seed variable names kept verbatim).

Settings is composed of one mixin per concern, each in its own module here.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings.api_access import ApiAccessSettings
from schemas.settings.delivery import DeliverySettings
from schemas.settings.git import GitSettings
from schemas.settings.http_edge import HttpEdgeSettings
from schemas.settings.infrastructure import InfrastructureSettings
from schemas.settings.leader import LeaderSettings
from schemas.settings.models import ModelsSettings
from schemas.settings.operators import OperatorSettings
from schemas.settings.saas import SaasSettings


# Pydantic orders inherited fields from the last base to the first, so the mixins are listed in
# reverse: Settings.model_fields (and the JSON schema) start with the infrastructure. Each mixin
# names its validators uniquely, as pydantic keys them by attribute name across the bases.
class Settings(
    ModelsSettings,
    ApiAccessSettings,
    OperatorSettings,
    HttpEdgeSettings,
    SaasSettings,
    GitSettings,
    LeaderSettings,
    DeliverySettings,
    InfrastructureSettings,
    BaseSettings,
):
    """Everything a syncbus process can be configured with."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
