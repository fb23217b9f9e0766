"""The one settings object: a TOML file plus ``LICENSING_*`` environment variables.

Precedence, highest first: environment variables, the TOML file, the defaults below. The file is
``licensing.toml`` in the working directory, or the path in ``LICENSING_CONFIG``.
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from licensing.schedules import cron_expression, quiet_hours
from plugins.fields import is_loopback as _is_loopback

CONFIG_FILE_VARIABLE = "LICENSING_CONFIG"
DEFAULT_CONFIG_FILE = Path("licensing.toml")
ED25519_PUBLIC_KEY_BYTES = 32

# More worker processes than this is a typo, not a deployment (each holds its own connections).
MAX_WORKERS = 64


class ConfigurationError(Exception):
    """The configuration cannot be used; the message names each bad key."""


class RosterSourceConfig(BaseModel):
    """One roster source of a district, under ``[districts.<slug>.roster_sources.<name>]``."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="The roster source plugin, e.g. oneroster_csv or clever.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the source: paths, URLs, credentials."
    )
    schedule: str | None = Field(
        default=None,
        description="When the scheduler syncs this source: a cron expression in the district's "
        "time zone; defaults to roster_sync_schedule (nightly at 02:00).",
    )
    sync_interval_hours: float | None = Field(
        default=None, description="Replaced by schedule; setting it is an error naming the fix."
    )
    max_drop_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="A sync removing more than this share of the source's active students is "
        "held for an administrator to confirm.",
    )
    max_quarantined_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="A sync whose quarantined rows (rows that cannot be classified: no id, no "
        "role) are more than this share of the rows it read is held for an administrator to "
        "confirm.",
    )

    full_sync_every_days: float = Field(
        default=7,
        gt=0,
        description="A source that delivers changes (OneRoster REST, Clever) is asked for its "
        "whole roster when its last full sync is older than this; the full sync corrects "
        "anything the deltas missed (weekly).",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else cron_expression(value)

    @field_validator("sync_interval_hours")
    @classmethod
    def _interval_replaced(cls, value: float | None) -> None:
        if value is not None:
            raise ValueError(
                replaced_interval("sync_interval_hours", timedelta(hours=value), "schedule")
            )
        return None


def replaced_interval(key: str, interval: timedelta, replacement: str) -> str:
    """The configuration error for an interval setting the cron schedules replaced."""
    hours = interval.total_seconds() / 3600
    if hours == 1:
        cron, meaning = "0 * * * *", "every hour, on the hour"
    elif hours.is_integer() and 0 < hours < 24 and 24 % hours == 0:
        cron, meaning = f"0 */{int(hours)} * * *", f"every {int(hours)} hours, on the hour"
    else:
        cron, meaning = "0 2 * * *", "every day at 02:00"
    return (
        f"{key} is no longer read: scheduled runs follow a cron expression on the district's "
        f'clock, so they keep their time of day. Write {replacement} = "{cron}" ({meaning}) '
        "in its place (see docs/configuration.md)"
    )


WebhookEvent = Literal["alert_raised", "alert_resolved"]


class WebhookConfig(BaseModel):
    """One webhook endpoint of a district, a ``[[districts.<slug>.webhooks]]`` table."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=500,
        description="Where alerts are POSTed: https, or http only to this machine (loopback).",
    )
    secret: str = Field(
        min_length=16,
        repr=False,
        description="Shared secret the HMAC-SHA256 signature is made with (16 characters or more).",
    )
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(get_args(WebhookEvent)),
        description="Which notifications this endpoint receives.",
    )

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        if parts.username or parts.password:
            raise ValueError("a webhook URL must not carry credentials; use the secret")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError(
                f"{value!r}: plain http is allowed only to this machine (localhost, 127.0.0.1, "
                "::1); use https"
            )
        return value


class DistrictConfig(BaseModel):
    """Per-district options, under ``[districts.<slug>]`` in the TOML file."""

    model_config = ConfigDict(extra="forbid")

    license_source: str = Field(
        default="license_file", description="Name of the license source plugin to ask."
    )
    license_file: Path | None = Field(
        default=None,
        description="Signed license file; defaults to <data_dir>/licenses/<slug>.license.",
    )
    license_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the license source, e.g. the licensing server's URL and API key.",
    )
    roster_sources: dict[str, RosterSourceConfig] = Field(
        default_factory=dict, description="The district's roster sources, by name."
    )
    last_grade: str = Field(
        default="12", description="The district's last grade; students above it are reviewed."
    )
    stale_after_days: int = Field(
        default=400,
        ge=1,
        description="Students not modified in their source for longer than this are reviewed.",
    )
    test_account_patterns: list[str] = Field(
        default_factory=lambda: ["test", "demo", "sample", "zz"],
        description="Names or usernames starting with one of these look like test accounts.",
    )
    closed_schools: list[str] = Field(
        default_factory=list,
        description="Schools (ids or names as the roster has them) that have closed.",
    )
    webhooks: list[WebhookConfig] = Field(
        default_factory=list,
        description="Endpoints that receive the district's alerts, signed (built-in webhooks).",
    )
    quiet_hours: str | None = Field(
        default=None,
        description='The district\'s own quiet hours ("07:00-16:00", its local time; "" for '
        "none); defaults to the top-level quiet_hours.",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is not None:
            quiet_hours(value)
        return value

    @field_validator("webhooks")
    @classmethod
    def _one_entry_per_url(cls, webhooks: list[WebhookConfig]) -> list[WebhookConfig]:
        urls = [webhook.url for webhook in webhooks]
        repeated = sorted({url for url in urls if urls.count(url) > 1})
        if repeated:
            raise ValueError(f"webhook URL(s) listed twice: {', '.join(repeated)}")
        return webhooks


class HttpSettings(BaseModel):
    """Every outbound HTTP call: timeouts, retries and how they back off."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    attempt_deadline_seconds: float = Field(
        default=60.0, gt=0, description="Total time one attempt may take, however it is spent."
    )
    retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0, description="First retry's backoff base.")
    max_backoff_seconds: float = Field(default=30.0, ge=0)


class GraphQLLimits(BaseModel):
    """Limits that keep one request from costing the server more than it should."""

    model_config = ConfigDict(extra="forbid")

    max_depth: int = Field(default=10, ge=1)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=2000, ge=10)
    max_field_merges: int = Field(
        default=200,
        ge=0,
        description="The most pairs of different selections sharing a response name that one "
        "document may ask validation to merge (docs/limits.md); identical ones are merged free.",
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_query_cost: int = Field(
        default=1000,
        ge=1,
        description="The most one GraphQL operation may cost (docs/limits.md); a costlier one is "
        "refused before it runs.",
    )
    answer_snapshots: int = Field(
        default=2000,
        ge=0,
        description="Query answers each worker keeps, by document, variables, caller and the "
        "district's version, to answer the same query again without running it "
        "(docs/caching.md); 0 turns it off.",
    )


class PersistedQuerySettings(BaseModel):
    """Automatic persisted queries (docs/caching.md): documents sent once, then by their hash."""

    model_config = ConfigDict(extra="forbid")

    registered_only: bool = Field(
        default=False,
        description="Run only documents already registered (by `licensing queries register`, or "
        "the Licensing tab's own): nothing is registered on first use and a document sent as "
        "text alone is refused.",
    )
    max_document_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="The largest document a client may register, in bytes of UTF-8.",
    )
    max_per_district: int = Field(
        default=200,
        ge=1,
        description="The most documents one district's clients may register; the operator's "
        "registrations do not count.",
    )


class RateLimitSettings(BaseModel):
    """Each API token's budget of cost points: a token bucket shared by every worker."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Charge requests to their token's budget.")
    bucket_size: int = Field(
        default=5000,
        ge=1,
        description="Points a token can spend at once (the burst); keep it at least "
        "graphql.max_query_cost.",
    )
    restore_rate: float = Field(
        default=100.0, gt=0, description="Points given back to each token per second."
    )
    store: Literal["database", "memory"] = Field(
        default="database",
        description="Where the buckets live: the database, shared by every worker and host, or "
        "each worker's memory (a token then gets the budget once per worker).",
    )
    subscription_points_per_minute: int = Field(
        default=240,
        ge=0,
        description="Points an open subscription draws from its token's budget each minute.",
    )
    max_subscriptions_per_token: int = Field(
        default=20,
        ge=1,
        description="Subscriptions one token may hold open at once, on each worker.",
    )


class SignInSettings(BaseModel):
    """The Licensing tab's sessions, and how many failed sign-ins a client address may make."""

    model_config = ConfigDict(extra="forbid")

    session_idle_minutes: float = Field(
        default=30, gt=0, description="A tab session unused for this long ends."
    )
    session_lifetime_hours: float = Field(
        default=12, gt=0, description="A tab session ends this long after sign-in, however used."
    )
    failures_per_address: int = Field(
        default=10,
        ge=1,
        description="Failed sign-ins (bad tokens, on /session or as a bearer token) one client "
        "address may make per window; beyond it every sign-in from it gets HTTP 429.",
    )
    failure_window_seconds: int = Field(
        default=60, ge=1, le=86_400, description="The window failed sign-ins are counted in."
    )
    cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Live API tokens and tab sessions each worker remembers, so that a request "
        "signs in with one read of its district's version (docs/caching.md); 0 turns it off.",
    )


class Settings(BaseSettings):
    """Everything configurable about the service, validated at start."""

    model_config = SettingsConfigDict(
        env_prefix="LICENSING_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; defaults to a SQLite file in data_dir.",
    )
    data_dir: Path = Field(default=Path(".data"), description="Where local files are kept.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    keep_alive_seconds: int = Field(
        default=75,
        gt=0,
        le=3600,
        description="How long an idle client connection stays open. Longer than a load "
        "balancer's idle timeout (often 60 s), so the server never closes a connection the "
        "balancer is about to reuse (which the balancer would answer with a 502).",
    )
    development: bool = Field(
        default=False, description="Serves the GraphiQL explorer at /graphql when true."
    )
    default_time_zone: str = Field(
        default="UTC", description="IANA time zone for new districts, e.g. America/Chicago."
    )
    force_update_cooldown_seconds: int = Field(default=60, ge=0)
    force_update_wait_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long Force License Update waits for the license source before it answers "
        "that the update is in progress and finishes it in the background.",
    )
    license_refresh_schedule: str = Field(
        default="0 */6 * * *",
        description="When the scheduler refreshes each license: a cron expression in the "
        "district's time zone (every 6 hours by default).",
    )
    roster_sync_schedule: str = Field(
        default="0 2 * * *",
        description="When the scheduler syncs each roster source that sets no schedule of its "
        "own: a cron expression in the district's time zone (nightly at 02:00 by default).",
    )
    schedule_jitter_minutes: float = Field(
        default=30,
        ge=0,
        le=360,
        description="Scheduled syncs and refreshes start up to this many minutes after their "
        "cron time: a fixed delay per district and job, so the fleet spreads out.",
    )
    quiet_hours: str = Field(
        default="",
        description="When scheduled syncs and refreshes never run, on each district's clock: "
        '"07:00-16:00" (a run due then waits for the end); empty for none.',
    )
    license_refresh_interval_seconds: int | None = Field(
        default=None,
        description="Replaced by license_refresh_schedule; setting it is an error naming the fix.",
    )
    scheduler_enabled: bool = Field(
        default=True,
        description="Run the scheduler inside `licensing serve`; turn off when `licensing worker` "
        "runs it separately.",
    )
    sync_failing_tolerance_hours: float = Field(default=24, ge=0)
    roster_sync_stale_after_seconds: int = Field(
        default=900,
        ge=30,
        description="A running roster sync that has staged nothing for this long is taken for "
        "dead (its process was stopped): it is marked failed and its staged records removed.",
    )
    live_poll_seconds: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="How often each worker reads the change log for all its live subscriptions.",
    )
    license_public_keys: list[str] = Field(
        default_factory=list,
        description="Base64 Ed25519 public keys whose license signatures are trusted.",
    )
    graphql: GraphQLLimits = Field(default_factory=GraphQLLimits)
    persisted_queries: PersistedQuerySettings = Field(default_factory=PersistedQuerySettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    sign_in: SignInSettings = Field(default_factory=SignInSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    disabled_plugins: list[str] = Field(
        default_factory=list,
        description="Plugins not to load, by name (a built-in's short name or an entry-point name).",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="How `licensing serve` and `licensing worker` write log lines: one JSON "
        "object a line, or readable text; auto: text in a terminal, JSON under a service "
        "manager (systemd) or when standard error is not a terminal.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="The least severe log lines written."
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port on which `licensing worker` serves its Prometheus /metrics; unset: none.",
    )
    worker_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="The processor niceness `licensing worker` runs at, at least (0 to 19): "
        "its roster syncs yield the processor to the requests of the tab on a shared host.",
    )
    districts: dict[str, DistrictConfig] = Field(default_factory=dict)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format_any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("default_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("license_refresh_schedule", "roster_sync_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return cron_expression(value)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        quiet_hours(value)
        return value

    @field_validator("license_refresh_interval_seconds")
    @classmethod
    def _interval_replaced(cls, value: int | None) -> None:
        if value is not None:
            raise ValueError(
                replaced_interval(
                    "license_refresh_interval_seconds",
                    timedelta(seconds=value),
                    "license_refresh_schedule",
                )
            )
        return None

    @field_validator("license_public_keys")
    @classmethod
    def _public_keys(cls, keys: list[str]) -> list[str]:
        # Checked at start: a mistyped key would otherwise only show when a license is refused.
        for position, key in enumerate(keys, start=1):
            try:
                raw = base64.b64decode(key, validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != ED25519_PUBLIC_KEY_BYTES:
                raise ValueError(
                    f"key {position} ({key[:16]!r}) is not a base64 Ed25519 public key "
                    "(44 characters, from the key's 32 raw bytes)"
                )
        return keys

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'licensing.db'}"

    @property
    def sync_failing_tolerance(self) -> timedelta:
        """How long a sync may keep failing before the Sync Failing alert is raised."""
        return timedelta(hours=self.sync_failing_tolerance_hours)

    @property
    def trusted_keys_dir(self) -> Path:
        """Public keys dropped here (``*.pub``) are trusted too; the demo writes its own here."""
        return self.data_dir / "trusted-keys"

    def district(self, slug: str) -> DistrictConfig:
        return self.districts.get(slug, DistrictConfig())

    @property
    def schedule_jitter(self) -> timedelta:
        """The window each scheduled job's fixed delay is drawn from."""
        return timedelta(minutes=self.schedule_jitter_minutes)

    def quiet_hours_for(self, slug: str) -> str:
        """The district's quiet hours setting: its own, else the top-level one."""
        own = self.district(slug).quiet_hours
        return self.quiet_hours if own is None else own

    def roster_sync_schedule_for(self, slug: str, source: str) -> str:
        """The cron expression a district's roster source is synced on."""
        config = self.district(slug).roster_sources.get(source)
        return (config.schedule if config else None) or self.roster_sync_schedule

    def license_file_for(self, slug: str) -> Path:
        return self.district(slug).license_file or self.data_dir / "licenses" / f"{slug}.license"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def config_file() -> Path | None:
    """The configuration file that is read, or None when there is none."""
    return _config_file()


def _config_file() -> Path | None:
    named = os.environ.get(CONFIG_FILE_VARIABLE)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_FILE_VARIABLE} names {path}, which is not a file.")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the configuration, or raise ConfigurationError naming each bad key."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for issue in error.errors():
            key = ".".join(str(part) for part in issue["loc"]) or "(top level)"
            problems.append(f"  {key}: {issue['msg']}")
        raise ConfigurationError("Invalid configuration:\n" + "\n".join(problems)) from None
    except Exception as error:  # a TOML syntax error, for instance
        if isinstance(error, ConfigurationError):
            raise
        raise ConfigurationError(f"Cannot read the configuration: {error}") from None
