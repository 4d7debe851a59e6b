"""Settings of the git domain (seed 002): the repository, its local copy, test discovery."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from schemas.settings.env_values import empty_is_unset


class GitSettings(BaseModel):
    """Where the repository is, how it is reached, and where its tests are discovered."""

    git_repo_url: str | None = Field(
        None,
        validation_alias="GIT_REPO_URL",
        repr=False,  # an https URL may carry a token
        description="The repository releases' branches live in: file://, ssh:// (or "
        "user@host:path) or https://.",
    )
    git_repo_local_path: str = Field(
        ".syncbus/git/repo",
        validation_alias="GIT_REPO_LOCAL_PATH",
        description="The worker's local copy (objects only, no work tree).",
    )
    git_repo_branch: str = Field(
        "master",
        validation_alias="GIT_REPO_BRANCH",
        description="The branch of a release in SYNCBUS_RELEASES_FILE that names none.",
    )
    git_repo_ssh_key_path: str | None = Field(None, validation_alias="GIT_REPO_SSH_KEY_PATH")
    git_ssh_strict_host_key_checking: bool = Field(
        True, validation_alias="GIT_SSH_STRICT_HOST_KEY_CHECKING"
    )
    git_ssh_known_hosts_path: str | None = Field(
        None,
        validation_alias="GIT_SSH_KNOWN_HOSTS_PATH",
        description="known_hosts for strict host key checking (default: ssh's own).",
    )
    git_operation_timeout_s: float = Field(
        300.0,
        gt=0,
        validation_alias="GIT_OPERATION_TIMEOUT_SECONDS",
        description="Bounds every Git operation (fetch, listing, reading files).",
    )
    test_discovery_base_path: str = Field(
        "",
        validation_alias="TEST_DISCOVERY_BASE_PATH",
        description="Where tests are discovered, relative to the repository root.",
    )
    test_discovery_staging_config: str | None = Field(
        None,
        validation_alias="TEST_DISCOVERY_STAGING_CONFIG",
        description="An INI file in the repository adding staging facts to tests.",
    )
    metadata_sync_max_parse_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        validation_alias="METADATA_SYNC_MAX_PARSE_FAILURE_RATE",
        description="Above this share of test files failing to parse, a sync changes nothing.",
    )
    releases_file: str | None = Field(
        None,
        validation_alias="SYNCBUS_RELEASES_FILE",
        description="YAML file of releases, loaded by the api at start.",
    )

    _git_empty_is_unset = field_validator(
        "git_repo_url",
        "git_repo_ssh_key_path",
        "git_ssh_known_hosts_path",
        "test_discovery_staging_config",
        "releases_file",
        mode="before",
    )(empty_is_unset)
