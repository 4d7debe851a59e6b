"""GET a JSON document from a catalogue API: the shared source client with the models' wording."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from schemas.settings import Settings
from streams.sources.http import JsonResponse, Params, SourceClient, SourceError
from streams.sources.retry import (
    ResponseClassifier,
    RetryPolicy,
    ratelimit_reset_seconds,
    retry_after_seconds,
    server_wait_seconds,
)

__all__ = [
    "JsonResponse",
    "RequestPolicy",
    "SourceError",
    "get_json",
    "new_client",
    "ratelimit_reset_seconds",
    "retry_after_seconds",
    "server_wait_seconds",
]

USER_AGENT = "syncbus-models-sync"
MAX_WAIT_SETTING = "MODELS_SOURCE_MAX_RETRY_WAIT_S"


@dataclass(frozen=True)
class RequestPolicy:
    """How long one request may take and how often a failed one is tried again."""

    timeout_s: float
    attempts: int
    max_wait_s: float
    backoff_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestPolicy:
        return cls(
            timeout_s=settings.source_timeout_s,
            attempts=settings.source_retries + 1,
            max_wait_s=settings.source_max_retry_wait_s,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts,
            backoff_s=self.backoff_s,
            max_wait_s=self.max_wait_s,
            max_wait_name=MAX_WAIT_SETTING,
        )


class CatalogueResponses(ResponseClassifier):
    """The shared rules, naming a failed answer by its bare status (``HTTP 429``).

    That is how the models domain's reports have always worded it.
    """

    def notes(self, response: httpx.Response) -> list[str]:
        return []


CATALOGUE_RESPONSES = CatalogueResponses()


def new_client(settings: Settings) -> httpx.AsyncClient:
    """The shared client for one sync; redirects are reported, not followed (see ``get_json``)."""
    return httpx.AsyncClient(
        timeout=settings.source_timeout_s,
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        follow_redirects=False,
    )


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    label: str,
    policy: RequestPolicy,
    params: Params | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    """GET ``url`` and parse its JSON body, retrying 408/429/5xx, timeouts and broken connections.

    The wait before a retry is what the server asked for (``RateLimit`` with ``r=0``, else
    ``Retry-After``), otherwise exponential backoff with jitter; either is capped at
    ``policy.max_wait_s``. Raises ``SourceError`` whose message starts with ``label``.
    """
    source = SourceClient(
        client,
        timeout_s=policy.timeout_s,
        retry=policy.retry_policy(),
        classifier=CATALOGUE_RESPONSES,
    )
    return await source.get_json(url, label=label, params=params, headers=headers)
