"""the saas domain (seed 001, supasaasy): app instances, entities, sync state and per-resource views

Entities keep supasaasy's layout (``supasaasy.entities``: one row per external object, its raw
payload as jsonb, unique by app, collection and external id). ``supasaasy.sync_state`` is a
view over the core ``sync_state`` (domain ``saas``: scope = app_key, collection =
collection_key). The Stripe views give each resource typed columns, as supasaasy's do.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STRIPE_VIEWS = {
    "stripe_customers": (
        "stripe_customer",
        "raw_payload ->> 'email' AS email, raw_payload ->> 'name' AS name",
    ),
    "stripe_products": (
        "stripe_product",
        "raw_payload ->> 'name' AS name, (raw_payload ->> 'active')::boolean AS active",
    ),
    "stripe_prices": (
        "stripe_price",
        "raw_payload ->> 'product' AS product, raw_payload ->> 'currency' AS currency, "
        "(raw_payload ->> 'unit_amount')::bigint AS unit_amount, "
        "raw_payload -> 'recurring' ->> 'interval' AS recurring_interval, "
        "(raw_payload ->> 'active')::boolean AS active",
    ),
    "stripe_plans": (
        "stripe_plan",
        "raw_payload ->> 'product' AS product, raw_payload ->> 'currency' AS currency, "
        "(raw_payload ->> 'amount')::bigint AS amount, raw_payload ->> 'interval' AS interval, "
        "(raw_payload ->> 'active')::boolean AS active",
    ),
    "stripe_subscriptions": (
        "stripe_subscription",
        "raw_payload ->> 'customer' AS customer, raw_payload ->> 'status' AS status, "
        "to_timestamp((raw_payload ->> 'canceled_at')::bigint) AS canceled_at",
    ),
    "stripe_subscription_items": (
        "stripe_subscription_item",
        "raw_payload ->> 'subscription' AS subscription, "
        "raw_payload -> 'price' ->> 'id' AS price, (raw_payload ->> 'quantity')::bigint AS quantity",
    ),
}


def upgrade() -> None:
    # syncbus_request_sync() (pg_cron, migration 0010) may start it: seed 001's way.
    op.execute("INSERT INTO syncbus_pull_domains VALUES ('saas', '{incremental,full}')")
    op.execute(
        """
        CREATE TABLE saas_apps (
            app_key text PRIMARY KEY CHECK (app_key ~ '^[A-Za-z0-9_-]{1,64}$'),
            connector text NOT NULL,
            api_key_env text NOT NULL,
            webhook_secret_env text NOT NULL,
            api_base text NOT NULL,
            resources text[] NOT NULL,
            schedule text,
            mode text NOT NULL DEFAULT 'incremental' CHECK (mode IN ('full', 'incremental')),
            sync_from date,
            origin text NOT NULL DEFAULT 'api' CHECK (origin IN ('config', 'api')),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE SCHEMA supasaasy")
    op.execute(
        """
        CREATE TABLE supasaasy.entities (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            external_id text NOT NULL,
            app_key text NOT NULL,
            collection_key text NOT NULL,
            api_version text,
            raw_payload jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            archived_at timestamptz,
            deleted_at timestamptz,
            CONSTRAINT entities_app_collection_external_unique
                UNIQUE (app_key, collection_key, external_id)
        )
        """
    )
    op.execute(
        """
        CREATE VIEW supasaasy.sync_state AS
        SELECT scope AS app_key, collection AS collection_key, last_synced_at,
               cursor, updated_at
        FROM public.sync_state WHERE domain = 'saas'
        """
    )
    for view, (collection, columns) in STRIPE_VIEWS.items():
        op.execute(  # built from this file's constants only
            f"""
            CREATE VIEW supasaasy.{view} AS
            SELECT external_id AS id, app_key, {columns},
                   to_timestamp((raw_payload ->> 'created')::bigint) AS created,
                   archived_at, raw_payload, updated_at
            FROM supasaasy.entities
            WHERE collection_key = '{collection}' AND deleted_at IS NULL
            """
        )


def downgrade() -> None:
    op.execute("DELETE FROM syncbus_pull_domains WHERE domain = 'saas'")
    op.execute("DROP SCHEMA supasaasy CASCADE")
    op.execute("DROP TABLE saas_apps")
