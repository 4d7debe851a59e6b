"""syncbus_request_sync(): a sync job and its outbox row from plain SQL, for pg_cron

What the api records for a request (db.jobs.insert_job + db.outbox_rows.add_request_outbox), written in
SQL so that `SELECT cron.schedule(..., $$SELECT syncbus_request_sync('models')$$)` starts a
sync: the outbox relay publishes the row, the worker runs the job. See docs/pg_cron.md.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "syncbus_request_sync(text, text, text, jsonb, text, boolean)"

# Kept free of ":name" and "%" pairs SQLAlchemy's text() would read as parameters.
CREATE = r"""
CREATE FUNCTION syncbus_request_sync(
    p_domain text,
    p_scope text DEFAULT 'default',
    p_mode text DEFAULT 'full',
    p_params jsonb DEFAULT '{}'::jsonb,
    -- SYNCBUS_TOPIC_PREFIX: set it once with ALTER DATABASE ... SET syncbus.topic_prefix.
    p_topic_prefix text DEFAULT coalesce(
        nullif(current_setting('syncbus.topic_prefix', true), ''), 'syncbus.'
    ),
    p_exclusive boolean DEFAULT true
) RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SET search_path FROM CURRENT
AS $function$
DECLARE
    -- The pull domains and their modes (schemas.domains.DOMAIN_RULES): they fetch their own
    -- data, so a schedule can start them. A new pull domain adds its row to
    -- syncbus_pull_domains in its own migration.
    schedulable CONSTANT jsonb := (
        SELECT coalesce(jsonb_object_agg(domain, to_jsonb(modes)), '{}'::jsonb)
        FROM syncbus_pull_domains
    );
    -- Served too, but each request carries its batch, which a schedule does not have.
    push_domains CONSTANT text[] := ARRAY['dictionary'];
    v_hint CONSTANT text := 'schedulable domains: ' || (
        SELECT string_agg(name, ', ' ORDER BY name) FROM jsonb_object_keys(schedulable) AS name
    );
    v_request_id text;
    v_job_id uuid;
    v_problem text;
BEGIN
    IF p_domain IS NULL OR p_domain = '' THEN
        RAISE EXCEPTION 'syncbus_request_sync: domain must not be empty'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = v_hint;
    END IF;
    IF p_domain = ANY (push_domains) THEN
        RAISE EXCEPTION 'syncbus_request_sync: % is a push domain: each request needs a payload '
            '(a batch sent to the api), which a schedule cannot supply', p_domain
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = v_hint;
    END IF;
    IF NOT schedulable ? p_domain THEN
        RAISE EXCEPTION 'syncbus_request_sync: unknown domain ''%'': syncbus serves no requests '
            'topic for it', p_domain
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = v_hint;
    END IF;
    IF p_scope IS NULL OR p_scope = '' THEN
        RAISE EXCEPTION 'syncbus_request_sync: scope must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF length(p_scope) > 200 OR p_scope ~ '[\x01-\x1f\x7f]' THEN
        RAISE EXCEPTION 'syncbus_request_sync: scope must be at most 200 printable characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_mode IS NULL OR p_mode NOT IN ('full', 'incremental') THEN
        RAISE EXCEPTION 'syncbus_request_sync: unknown mode ''%'': full or incremental',
            coalesce(p_mode, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (schedulable -> p_domain) ? p_mode THEN
        RAISE EXCEPTION 'syncbus_request_sync: % has no % mode (its modes: %)', p_domain, p_mode,
            (SELECT string_agg(m, ', ') FROM jsonb_array_elements_text(schedulable -> p_domain) m)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_params IS NULL OR jsonb_typeof(p_params) <> 'object' THEN
        RAISE EXCEPTION 'syncbus_request_sync: params must be a JSON object, not %',
            coalesce(jsonb_typeof(p_params), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- What the worker's envelope check (schemas.json_value) refuses, refused here: such a
    -- request would be dead-lettered, its job left queued and its domain blocked.
    WITH RECURSIVE node (v, depth) AS (
        SELECT p_params, 0
        UNION ALL
        SELECT child.v, node.depth + 1
        FROM node
        CROSS JOIN LATERAL (
            SELECT value FROM jsonb_each(CASE WHEN jsonb_typeof(node.v) = 'object' THEN node.v END)
            UNION ALL
            SELECT value FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(node.v) = 'array' THEN node.v END
            )
        ) AS child (v)
        WHERE node.depth < 64
    )
    SELECT CASE
        WHEN jsonb_typeof(v) IN ('object', 'array') THEN 'nested deeper than 64 levels'
        ELSE 'number ' || left(v #>> '{}', 40) || ' out of range (64-bit integer or double)'
    END
    INTO v_problem
    FROM node
    WHERE (jsonb_typeof(v) IN ('object', 'array') AND depth >= 64)
       OR (jsonb_typeof(v) = 'number' AND NOT CASE
               WHEN v #>> '{}' ~ '^-?[0-9]+$'
               THEN (v #>> '{}')::numeric BETWEEN -9223372036854775808 AND 18446744073709551615
               ELSE abs((v #>> '{}')::numeric) <= 1.7976931348623157e308
           END)
    LIMIT 1;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'syncbus_request_sync: params: %', v_problem
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_topic_prefix IS NULL OR p_topic_prefix !~ '^[A-Za-z0-9._-]{0,200}$' THEN
        RAISE EXCEPTION 'syncbus_request_sync: topic prefix ''%'' is not the start of a Kafka '
            'topic name (letters, digits, ".", "_", "-"): use SYNCBUS_TOPIC_PREFIX',
            coalesce(p_topic_prefix, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_exclusive IS NULL THEN
        RAISE EXCEPTION 'syncbus_request_sync: exclusive must be true or false'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_request_id := 'sql:' || gen_random_uuid();
    -- Again when the active job behind a conflict ended before we looked: the slot is free.
    FOR attempt IN 1..3 LOOP
        -- ux_sync_jobs_one_active_exclusive decides, so concurrent callers agree (db.jobs).
        INSERT INTO sync_jobs AS j (
            id, request_id, domain, scope, mode, trigger, actor, params, payload_sha256, exclusive
        )
        VALUES (
            gen_random_uuid(), v_request_id, p_domain, p_scope, p_mode, 'schedule', NULL,
            p_params, NULL, p_exclusive
        )
        ON CONFLICT DO NOTHING
        RETURNING j.id INTO v_job_id;
        IF v_job_id IS NOT NULL THEN
            -- The envelope of schemas.events.SyncRequest, its keys in the same order.
            INSERT INTO outbox (topic, request_id, key, value, headers)
            VALUES (
                p_topic_prefix || 'requests.' || p_domain,
                v_request_id,
                p_domain || ':' || p_scope,
                convert_to(
                    json_build_object(
                        'schema', json_build_object('name', 'syncbus.sync_request', 'version', 1),
                        'event_id', gen_random_uuid(),
                        'occurred_at', to_char(
                            clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
                        ),
                        'request_id', v_request_id,
                        'domain', p_domain,
                        'scope', p_scope,
                        'mode', p_mode,
                        'trigger', 'schedule'::text,
                        'actor', NULL::text,
                        'params', p_params,
                        'payload', NULL::jsonb,
                        'payload_ref', NULL::jsonb
                    )::text,
                    'UTF8'
                ),
                jsonb_build_array(
                    jsonb_build_array('request_id', v_request_id),
                    jsonb_build_array('schema', 'syncbus.sync_request/v1')
                )
            );
            RETURN v_job_id;
        END IF;
        SELECT j.id INTO v_job_id
        FROM sync_jobs AS j
        WHERE j.domain = p_domain AND j.scope = p_scope AND j.exclusive
          AND j.status IN ('queued', 'running');
        IF v_job_id IS NOT NULL THEN
            RETURN v_job_id;  -- the previous run is still queued or running: record nothing
        END IF;
    END LOOP;
    RAISE EXCEPTION 'syncbus_request_sync: could not record a % job for scope %', p_domain, p_scope
        USING ERRCODE = 'serialization_failure';
END
$function$
"""

COMMENT = (
    "COMMENT ON FUNCTION " + SIGNATURE + " IS 'Record a sync request (job + outbox row) as the "
    "api does, trigger schedule; for an exclusive domain whose job of this scope is queued "
    "or running, record nothing and return that job. Returns the job id. See docs/pg_cron.md.'"
)


def upgrade() -> None:
    op.execute("CREATE TABLE syncbus_pull_domains (domain text PRIMARY KEY, modes text[] NOT NULL)")
    op.execute("INSERT INTO syncbus_pull_domains VALUES ('models', '{full}')")
    op.execute(CREATE)
    op.execute(COMMENT)


def downgrade() -> None:
    op.execute("DROP FUNCTION " + SIGNATURE)
    op.execute("DROP TABLE syncbus_pull_domains")
