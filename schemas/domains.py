"""What the platform needs to know of each domain: how it is triggered and which modes it has."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import SyncMode


@dataclass(frozen=True)
class DomainRules:
    """``pull`` domains fetch their data themselves, so a schedule can fire them; push
    domains carry their payload in the request. ``exclusive`` domains refuse a second
    trigger (409) while a job of the same scope is queued or running."""

    pull: bool
    modes: tuple[SyncMode, ...]
    exclusive: bool

    @property
    def default_mode(self) -> SyncMode:
        """Incremental where the domain has it (seed 001: scheduled syncs are incremental)."""
        return "incremental" if "incremental" in self.modes else "full"


DOMAIN_RULES: dict[str, DomainRules] = {
    "dictionary": DomainRules(pull=False, modes=("incremental",), exclusive=False),
    "models": DomainRules(pull=True, modes=("full",), exclusive=True),
    "saas": DomainRules(pull=True, modes=("incremental", "full"), exclusive=True),
    "git": DomainRules(pull=True, modes=("incremental", "full"), exclusive=True),
}


def schedulable() -> list[str]:
    return sorted(name for name, rules in DOMAIN_RULES.items() if rules.pull)
