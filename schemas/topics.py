"""Kafka topic names: the only place they are spelled out."""

from __future__ import annotations

from dataclasses import dataclass

DOMAINS: tuple[str, ...] = ("dictionary", "models", "saas", "git")


@dataclass(frozen=True)
class Topics:
    """Topic names under one configurable prefix (default ``syncbus.``)."""

    prefix: str = "syncbus."

    def requests(self, domain: str) -> str:
        return f"{self.prefix}requests.{domain}"

    @property
    def progress(self) -> str:
        return f"{self.prefix}progress"

    @property
    def audit(self) -> str:
        return f"{self.prefix}audit"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    def changes(self, domain: str) -> str:
        return f"{self.prefix}changes.{domain}"

    def all(self) -> list[str]:
        return [
            *(self.requests(d) for d in DOMAINS),
            *(self.changes(d) for d in DOMAINS),
            self.progress,
            self.audit,
            self.dlq,
            self.alerts,
        ]


def request_key(domain: str, scope: str) -> str:
    """Partition key of a sync request: one scope is processed in order."""
    return f"{domain}:{scope}"
