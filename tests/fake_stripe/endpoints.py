"""The read endpoints: list and retrieve for each resource, with Stripe's parameters and errors."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.fake_stripe.account import ENDED, StripeAccount
from tests.fake_stripe.objects import Kind, Obj
from tests.fake_stripe.store import Collection, Key, select
from tests.fake_stripe.wire import (
    Params,
    StripeError,
    boolean,
    created_bounds,
    limit_of,
    string,
    string_list,
    unknown_parameter,
)

EVENT_WINDOW_S = 30 * 86400
MAX_TYPES = 20
RESOURCES: dict[str, Kind | None] = {  # path segment -> kind (None: events)
    "customers": "customer",
    "products": "product",
    "prices": "price",
    "plans": "plan",
    "subscriptions": "subscription",
    "subscription_items": "subscription_item",
    "events": None,
}
PAGING = frozenset({"limit", "starting_after", "ending_before"})
FILTERS: dict[str, frozenset[str]] = {
    "customers": frozenset({"created", "email"}),
    "products": frozenset({"created", "active"}),
    "prices": frozenset({"created", "active", "product", "currency", "type"}),
    "plans": frozenset({"created", "active", "product"}),
    "subscriptions": frozenset({"created", "customer", "price", "status"}),
    "subscription_items": frozenset({"subscription"}),
    "events": frozenset({"created", "type", "types"}),
}
# Parameters Stripe takes that the fake does not apply: refused loudly rather than ignored.
NOT_IMPLEMENTED: dict[str, frozenset[str]] = {
    "customers": frozenset({"test_clock"}),
    "products": frozenset({"ids", "shippable", "url"}),
    "prices": frozenset({"lookup_keys", "recurring"}),
    "plans": frozenset(),
    "subscriptions": frozenset(
        {
            "automatic_tax",
            "collection_method",
            "current_period_end",
            "current_period_start",
            "customer_account",
            "test_clock",
        }
    ),
    "subscription_items": frozenset(),
    "events": frozenset({"delivery_success"}),
}
SUBSCRIPTION_STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
Keep = Callable[[Obj], bool]


def noun(resource: str) -> str:
    return resource.removesuffix("s").replace("_", " ") if resource != "events" else "event"


def check_params(resource: str, params: Params, allowed: frozenset[str]) -> None:
    for name in params:
        if name == "expand" or name in NOT_IMPLEMENTED.get(resource, ()):
            raise StripeError(
                400,
                f"FakeStripe does not implement the parameter {name} of /v1/{resource}",
                code="fake_not_implemented",
                param=name,
            )
        if name not in allowed:
            raise unknown_parameter(name)


def list_page(account: StripeAccount, resource: str, params: Params) -> Obj:
    """``GET /v1/<resource>``: one page of Stripe's list envelope, newest first."""
    check_params(resource, params, PAGING | FILTERS[resource])
    limit = limit_of(params)
    if "starting_after" in params and "ending_before" in params:
        raise StripeError(
            400,
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    low, high = created_bounds(params)
    keep = _keep(resource, params)
    with account.lock:
        keys, objects = _scope(account, resource, params)
        if resource == "events":
            window = account.now - EVENT_WINDOW_S
            low = window if low is None else max(low, window)
        after = _cursor(keys, objects, params, "starting_after", resource)
        before = _cursor(keys, objects, params, "ending_before", resource)
        data, has_more = select(
            keys, objects, limit=limit, low=low, high=high, after=after, before=before, keep=keep
        )
    return {"object": "list", "data": data, "has_more": has_more, "url": f"/v1/{resource}"}


def retrieve(account: StripeAccount, resource: str, id: str, params: Params) -> Obj:
    """``GET /v1/<resource>/<id>``; a deleted customer answers its ``deleted: true`` stub."""
    check_params(resource, params, frozenset())
    kind = RESOURCES[resource]
    with account.lock:
        if kind is None:
            found = account.events.objects.get(id)
            if found is not None and found["created"] < account.now - EVENT_WINDOW_S:
                found = None
        else:
            found = account.collections[kind].objects.get(id)
            if found is None and kind == "customer":
                found = account.deleted_customers.get(id)
    if found is None:
        raise StripeError(
            404, f"No such {noun(resource)}: '{id}'", code="resource_missing", param="id"
        )
    return found


def _scope(
    account: StripeAccount, resource: str, params: Params
) -> tuple[list[Key], dict[str, Obj]]:
    """The sorted keys and objects a list walks (a subscription's own items for items)."""
    kind = RESOURCES[resource]
    if kind is None:
        return account.events.keys, account.events.objects
    collection: Collection = account.collections[kind]
    if kind != "subscription_item":
        return collection.keys, collection.objects
    if "subscription" not in params:
        raise StripeError(
            400,
            "Missing required param: subscription.",
            code="parameter_missing",
            param="subscription",
        )
    sub_id = string(params["subscription"], "subscription")
    ids = account.items_of.get(sub_id)
    if ids is None:
        raise StripeError(
            400,
            f"No such subscription: '{sub_id}'",
            code="resource_missing",
            param="subscription",
        )
    keys = sorted((int(collection.objects[i]["created"]), i) for i in ids)
    return keys, collection.objects


def _cursor(
    keys: list[Key], objects: dict[str, Obj], params: Params, param: str, resource: str
) -> Key | None:
    if param not in params:
        return None
    id = string(params[param], param)
    obj = objects.get(id)
    key = None if obj is None else (int(obj["created"]), id)
    if key is None or (resource == "subscription_items" and key not in keys):
        raise StripeError(
            400, f"No such {noun(resource)}: '{id}'", code="resource_missing", param=param
        )
    return key


def _keep(resource: str, params: Params) -> Keep | None:
    """The non-``created`` filters of a list as one predicate (None: keep everything)."""
    tests: list[Keep] = []
    for field in ("email", "product", "currency", "type", "customer"):
        if field in params and not (resource == "events" and field == "type"):
            tests.append(_equals(field, string(params[field], field)))
    if "active" in params:
        tests.append(_equals("active", boolean(params["active"], "active")))
    if resource == "subscriptions":
        tests.append(_status(params))
        if "price" in params:
            price = string(params["price"], "price")
            tests.append(lambda s: any(i["price"]["id"] == price for i in s["items"]["data"]))
    if resource == "events":
        tests.extend(_event_types(params))
    if not tests:
        return None
    return lambda obj: all(test(obj) for test in tests)


def _equals(field: str, value: object) -> Keep:
    return lambda obj: obj.get(field) == value


def _status(params: Params) -> Keep:
    """Default: everything but canceled; ``all``; ``ended`` (canceled or incomplete_expired)."""
    status = string(params.get("status", ""), "status")
    if status and status not in SUBSCRIPTION_STATUSES:
        raise StripeError(
            400,
            f"Invalid status: must be one of {', '.join(SUBSCRIPTION_STATUSES)}",
            param="status",
        )
    if status == "all":
        return lambda s: True
    if status == "ended":
        return lambda s: s["status"] in ENDED
    if status:
        return lambda s: s["status"] == status
    return lambda s: s["status"] != "canceled"


def _event_types(params: Params) -> list[Keep]:
    if "type" in params and "types" in params:
        raise StripeError(
            400, "You may only specify one of these parameters: type, types.", param="types"
        )
    if "type" in params:
        pattern = string(params["type"], "type")
        regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
        return [lambda e: regex.fullmatch(e["type"]) is not None]
    if "types" in params:
        listed = string_list(params["types"], "types")
        types = frozenset(listed)
        if len(listed) > MAX_TYPES:
            raise StripeError(
                400, f"You may pass at most {MAX_TYPES} values for types.", param="types"
            )
        return [lambda e: e["type"] in types]
    return []
