"""Settings of who may call the api's protected routes: admin keys, signed pushes, triggers."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from schemas.settings.env_values import CommaList, empty_is_unset, split_commas


def _check_networks(entries: list[str], variable: str) -> list[str]:
    """Each entry an address or a CIDR range; a range with host bits set is refused rather
    than silently widened (``203.0.113.10/8`` would otherwise allow all of 203.0.0.0/8)."""
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            hint = ""
            if "host bits set" in str(exc):
                network = ipaddress.ip_network(entry, strict=False)
                address = entry.split("/", 1)[0]
                hint = f" (did you mean {network} or {address}?)"
            raise ValueError(
                f"{variable}: '{entry}' is not an IP address or a CIDR range: {exc}{hint}"
            ) from None
    return entries


class ApiAccessSettings(BaseModel):
    """Admin credentials, seed 004's signed dictionary push, seed 000's internal models trigger.

    Secrets are comma-separated so that one can be rotated without downtime.
    """

    # Admin credentials (seed 001: Bearer key, seed 002: PIN).
    admin_api_keys: CommaList = Field(
        default_factory=list, validation_alias="ADMIN_API_KEY", repr=False
    )
    admin_pins: CommaList = Field(default_factory=list, validation_alias="ADMIN_PIN", repr=False)

    # Seed 004: signed dictionary push
    internal_sync_source: str | None = Field(None, validation_alias="INTERNAL_SYNC_SOURCE")
    internal_sync_shared_secrets: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_SHARED_SECRET", repr=False
    )
    internal_sync_require_signature: bool = Field(
        True, validation_alias="INTERNAL_SYNC_REQUIRE_SIGNATURE"
    )
    internal_sync_allowed_ips: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_ALLOWED_IPS"
    )
    internal_sync_trusted_proxies: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_TRUSTED_PROXIES"
    )
    internal_sync_require_mtls: bool = Field(False, validation_alias="INTERNAL_SYNC_REQUIRE_MTLS")
    internal_sync_allowed_skew_seconds: int = Field(
        300, ge=1, validation_alias="INTERNAL_SYNC_ALLOWED_SKEW_SECONDS"
    )

    # Seed 000: the internal trigger of a models sync (Bearer token or HMAC of the body).
    internal_sync_tokens: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_TOKEN", repr=False
    )
    internal_sync_secrets: CommaList = Field(
        default_factory=list, validation_alias="INTERNAL_SYNC_SECRET", repr=False
    )
    models_wait_s: float = Field(
        50.0,
        ge=0,
        validation_alias="SYNCBUS_MODELS_WAIT_S",
        description="How long POST /api/internal/sync-models waits before answering 202.",
    )

    _api_access_split = field_validator(
        "admin_api_keys",
        "admin_pins",
        "internal_sync_shared_secrets",
        "internal_sync_allowed_ips",
        "internal_sync_trusted_proxies",
        "internal_sync_tokens",
        "internal_sync_secrets",
        mode="before",
    )(split_commas)
    _api_access_empty_is_unset = field_validator("internal_sync_source", mode="before")(
        empty_is_unset
    )

    @field_validator("internal_sync_allowed_ips", "internal_sync_trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str], info: ValidationInfo) -> list[str]:
        variable = {
            "internal_sync_allowed_ips": "INTERNAL_SYNC_ALLOWED_IPS",
            "internal_sync_trusted_proxies": "INTERNAL_SYNC_TRUSTED_PROXIES",
        }[str(info.field_name)]
        return _check_networks(value, variable)
