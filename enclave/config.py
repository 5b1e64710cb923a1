"""Settings, from the environment (``ENCLAVE_*``) and an optional TOML settings file.

Precedence, highest first: explicit arguments, environment variables, the settings file
(``ENCLAVE_SETTINGS_FILE``, else ``$ENCLAVE_HOME/enclave.toml`` when it exists), defaults.

The embedded default needs nothing: one data directory (``ENCLAVE_HOME``, default ``./.enclave``)
holds the SQLite metadata database and every store. In ``production`` mode the service refuses to
start until its secrets are set explicitly (:meth:`Settings.check_safe_to_start`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from enclave.domain.errors import ConfigurationError

DEFAULT_HOME = Path(".enclave")
MIN_SECRET_LENGTH = 32
KNOWN_WEAK_SECRETS = frozenset({"changeme", "change-me", "secret", "development", "dev", "enclave"})


def _settings_file() -> Path | None:
    explicit = os.environ.get("ENCLAVE_SETTINGS_FILE")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(f"ENCLAVE_SETTINGS_FILE points to {path}, which is not a file")
        return path
    home = Path(os.environ.get("ENCLAVE_HOME") or DEFAULT_HOME)
    candidate = home / "enclave.toml"
    return candidate if candidate.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENCLAVE_", extra="forbid", validate_default=True)

    mode: Literal["development", "production"] = Field(
        "development", description="'production' refuses default or missing secrets"
    )
    home: Path = Field(DEFAULT_HOME, description="data directory: SQLite file, stores, key store")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata database; default: SQLite under home"
    )
    secret_key: SecretStr | None = Field(
        None,
        description="signs web sessions; generated into home in development, required in production",
    )
    key_file: Path | None = Field(
        None,
        description="master key file (e.g. mounted from a secret store); default: keys/master.key in home",
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(8400, ge=1, le=65535)
    public_url: str | None = Field(None, description="URL users reach the API at, if behind a proxy")
    session_ttl_hours: int = Field(
        12, ge=1, le=24 * 7, description="lifetime of an API login's token and longest portal session"
    )
    portal_idle_minutes: int = Field(
        30, ge=1, le=24 * 60, description="a portal session ends after this many minutes unused"
    )
    login_max_failures: int = Field(
        5, ge=1, le=100, description="failed logins in a row that lock an account"
    )
    login_lockout_minutes: int = Field(
        15, ge=1, le=24 * 60, description="how long a locked account stays locked"
    )
    token_default_days: int = Field(30, ge=1, le=365)
    token_max_days: int = Field(365, ge=1, le=3650)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_upload_mb: int = Field(4096, ge=1, description="largest extract accepted by the API, in MiB")
    hub_host: str = Field("127.0.0.1", description="address the workspace hub's proxy listens on")
    hub_port: int = Field(8000, ge=1, le=65535, description="port of the workspace hub's proxy")
    workspace_mode: Literal["sandbox", "unsafe"] = Field(
        "sandbox",
        description="sandbox: each workspace in bubblewrap as its own account (needs root and bwrap);"
        " unsafe: workspaces as the hub's own user, for development only",
    )
    workspace_terminals: Literal["off", "recorded"] = Field(
        "off",
        description="off: no terminals in workspaces; recorded: terminals, each command line recorded in the"
        " execution record before it runs",
    )
    queries_outside_workspace: bool | None = Field(
        None,
        description="whether personal tokens may run DP queries over the API's network port; default:"
        " off in production (queries are then a workspace's alone), on in development and the demo",
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="addresses or networks of the reverse proxies in front of the API (comma-separated);"
        " from them, the audit log takes the client's address from X-Forwarded-For",
    )
    execution_retention_days: int = Field(
        3650,
        ge=0,
        description="how long after a project's end its execution record is kept before it may be purged",
    )
    workspace_poll_seconds: int = Field(
        10, ge=1, le=600, description="how often the hub checks that a running workspace's project is active"
    )
    workspace_memory_mb: int = Field(
        4096,
        ge=256,
        description="memory of a workspace: its processes and its /tmp and /dev/shm pages together (its"
        " control group's limit; also each process's data size limit)",
    )
    workspace_processes: int = Field(
        256,
        ge=16,
        description="processes and threads of a workspace (its control group's and its account's limit)",
    )
    workspace_cpus: float = Field(
        1.0,
        ge=0,
        description="CPU time a workspace may use, in cores (its control group's quota); 0: no quota",
    )
    workspace_tmp_mb: int = Field(1024, ge=16, description="size of a workspace's /tmp")
    workspace_shm_mb: int = Field(256, ge=16, description="size of a workspace's /dev/shm")
    workspace_disk_mb: int = Field(
        10240,
        ge=0,
        description="size of each workspace home (its own filesystem image); 0: no quota, refused in"
        " production",
    )
    workspace_cgroup: str = Field(
        "auto",
        description="where workspaces' control groups are made: auto (the hub's own group, cgroup v2 or v1),"
        " the path of a delegated cgroup v2 directory, or off (no control groups: refused in production)",
    )
    proxy_command: str | None = Field(
        None, description="configurable-http-proxy executable (default: the one `make setup` installs)"
    )
    run_dir: Path | None = Field(
        None, description="directory of the Unix sockets (default: a private directory under /tmp)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _settings_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("database_url")
    @classmethod
    def _blank_is_default(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        networks = []
        for item in (str(i).strip() for i in items):
            if item:
                try:
                    networks.append(str(ipaddress.ip_network(item, strict=False)))
                except ValueError:
                    raise ValueError(f"{item!r} is not an address or a network such as 10.0.0.0/8") from None
        return tuple(networks)

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n) for n in self.trusted_proxies)

    # --- derived paths ---------------------------------------------------------------------

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'enclave.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.database.startswith("sqlite")

    @property
    def research_store(self) -> Path:
        return self.home_dir / "research"

    @property
    def key_store(self) -> Path:
        return self.home_dir / "keys"

    @property
    def master_key_file(self) -> Path:
        return self.key_file.expanduser().resolve() if self.key_file else self.key_store / "master.key"

    @property
    def holding_store(self) -> Path:
        return self.home_dir / "holding"

    @property
    def release_store(self) -> Path:
        return self.home_dir / "releases"

    @property
    def quarantine_store(self) -> Path:
        return self.home_dir / "quarantine"

    @property
    def derived_store(self) -> Path:
        """Cached per-person frames of cohort definitions: research data, kept beside the store."""
        return self.home_dir / "derived"

    @property
    def workspaces_dir(self) -> Path:
        """Workspace homes, one per (project, user); each owned by its workspace account."""
        return self.home_dir / "workspaces"

    def workspace_home(self, project_id: int, username: str) -> Path:
        return self.workspaces_dir / f"p{project_id}" / username

    def workspace_disk(self, project_id: int, username: str) -> Path:
        """The filesystem image of a workspace home (its quota), outside every home."""
        return self.home_dir / "workspace-disks" / f"p{project_id}" / f"{username}.ext4"

    @property
    def hub_dir(self) -> Path:
        return self.home_dir / "hub"

    @property
    def sockets_dir(self) -> Path:
        """Where the API's, the hub's and the workspaces' Unix sockets live. Socket paths are limited
        to 107 bytes, so by default a short private directory under /tmp named after ENCLAVE_HOME."""
        if self.run_dir is not None:
            return self.run_dir.expanduser().resolve()
        tag = hashlib.sha256(str(self.home_dir).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"enclave-{os.getuid()}-{tag}"

    @property
    def api_socket(self) -> Path:
        return self.sockets_dir / "api.sock"

    @property
    def hub_url(self) -> str:
        return f"http://{self.hub_host}:{self.hub_port}"

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    # --- safety ----------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """What would make this configuration unsafe in production, each saying what to set."""
        found: list[str] = []
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if not secret:
            found.append("set ENCLAVE_SECRET_KEY to a random string of at least 32 characters")
        elif len(secret) < MIN_SECRET_LENGTH or secret.lower() in KNOWN_WEAK_SECRETS:
            found.append(
                "ENCLAVE_SECRET_KEY is too weak: use a random string of at least 32 characters"
                " (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.database_url is None:
            found.append(
                "set ENCLAVE_DATABASE_URL (for example postgresql+psycopg://enclave@db/enclave);"
                " the embedded SQLite default is for development"
            )
        return found

    @property
    def allows_queries_outside_workspace(self) -> bool:
        if self.queries_outside_workspace is not None:
            return self.queries_outside_workspace
        return self.mode != "production"

    def check_safe_to_start(self) -> None:
        if self.mode != "production":
            return
        found = self.problems()
        if found:
            raise ConfigurationError("refusing to start in production mode: " + "; ".join(found))

    def ensure_home(self) -> None:
        """Create the data directory and its stores, readable by the service account only."""
        for path in (
            self.home_dir,
            self.research_store,
            self.key_store,
            self.holding_store,
            self.release_store,
            self.quarantine_store,
            self.derived_store,
        ):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)

    def ensure_sockets_dir(self) -> Path:
        """Create the sockets directory, private to this account; refuse one that someone else
        made (a shared /tmp is where an attacker would plant it)."""
        path = self.sockets_dir
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise ConfigurationError(
                f"{path} is not a directory of this account: remove it or set ENCLAVE_RUN_DIR"
            )
        path.chmod(0o700)
        return path

    def resolved_secret_key(self) -> str:
        """The secret key; in development, generated once into the key store."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        self.check_safe_to_start()
        path = self.key_store / "secret_key"
        if not path.exists():
            self.ensure_home()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one readable ConfigurationError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            parts.append(f"ENCLAVE_{name.upper()}: {err['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(parts)) from None
