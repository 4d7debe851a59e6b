"""The weighted mix of every generator: the one strategy the suite draws its requests from."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from schemathesis import Case

from tests.bad_input.alerts import alerts_request
from tests.bad_input.apps import app_other, app_write
from tests.bad_input.create import create_request
from tests.bad_input.generic import (
    method_request,
    param_request,
    public_request,
    unknown_path_request,
)
from tests.bad_input.git import git_family
from tests.bad_input.jobs import job_request, list_request, sse_request
from tests.bad_input.models import models_admin_trigger, models_trigger_request
from tests.bad_input.parser_level import parser_request
from tests.bad_input.push import push_request, status_request
from tests.bad_input.request import BadRequest, Target
from tests.bad_input.saas_status import job_status_request
from tests.bad_input.saas_sync import sync_family
from tests.bad_input.schedules import schedule_other, schedule_write
from tests.bad_input.schemathesis_cases import schemathesis_request
from tests.bad_input.webhook import webhook_request

STATS_ROUTE = "GET /api/admin/dictionary/internal-sync/stats"
STATS_PATH = b"/api/admin/dictionary/internal-sync/stats"


def any_bad_request(
    t: Target, routes: dict[str, set[str]], cases: st.SearchStrategy[Case[Any]] | None
) -> st.SearchStrategy[BadRequest]:
    """Every kind of bad request, weighted towards the routes with the most to get wrong."""
    weighted: list[tuple[int, st.SearchStrategy[BadRequest]]] = [
        (30, push_request(t)),
        (15, create_request(t)),
        (8, status_request(t)),
        (9, sse_request(t)),
        (5, job_request(t)),
        (6, list_request(t)),
        (3, param_request(t, STATS_ROUTE, STATS_PATH, "windowMinutes")),
        (3, param_request(t, "GET /api/admin/sync-models", b"/api/admin/sync-models", "limit")),
        (2, models_admin_trigger(t)),
        (6, models_trigger_request(t)),
        (8, public_request(t)),  # six paths, each needs its ten
        (3, unknown_path_request(t)),
        (4, method_request(t, routes)),
        (2, parser_request(t)),
        (12, sync_family(t)),
        (4, job_status_request(t)),
        (8, webhook_request(t)),
        (6, schedule_write(t)),
        (5, schedule_other(t)),
        (5, app_write(t)),
        (4, app_other(t)),
        (2, alerts_request(t)),
        (14, git_family(t)),
    ]
    if cases is not None:
        weighted.append((8, schemathesis_request(t, cases)))
    table = [s for weight, s in weighted for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])
