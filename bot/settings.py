"""Settings: environment variables win over `.env`, which wins over the defaults.

Built once, in the entry point; nothing below `bot/` reads the environment.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from bot.errors import SettingsError
from retriever.models import ABSTAIN_LEVELS
from store.embedding import Runtime

log = logging.getLogger(__name__)

_PLACEHOLDERS = {"", "changeme", "change-me", "your-token-here", "your_token_here", "xxx", "token"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def default_data_dir() -> Path:
    """The per-user data folder: ~/.local/share/qabot on Linux."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("qabot", appauthor=False))


class Settings(BaseSettings):
    """Every setting qabot reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,  # `QABOT_DATA_DIR=` in .env means "the default"
    )

    data_dir: Path = Field(default_factory=default_data_dir, alias="QABOT_DATA_DIR")
    model: str = Field("all-MiniLM-L6-v2", alias="QABOT_MODEL")
    # The runtime that encodes questions: auto (numpy where it runs the model), numpy, torch.
    query_runtime: Runtime = Field("auto", alias="QABOT_QUERY_RUNTIME")
    collection: str = Field("default", alias="QABOT_COLLECTION")
    log_level: str = Field("WARNING", alias="QABOT_LOG_LEVEL")

    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    discord_guild_id: int | None = Field(None, alias="DISCORD_GUILD_ID")
    # Channel ids where a mention is answered; empty: every channel the bot can read.
    discord_channels: Annotated[list[int], NoDecode] = Field(
        default_factory=list, alias="DISCORD_CHANNELS"
    )
    # guild id -> collection name, for servers that share a collection; others use their own.
    discord_collections: dict[str, str] = Field(default_factory=dict, alias="DISCORD_COLLECTIONS")
    # The discord.py shards this process runs, "IDS/COUNT" (0/2: shard 0 of 2; 0,1/4), for a
    # bot run as several processes on one database; None: one process, unsharded.
    discord_shard: str | None = Field(None, alias="QABOT_DISCORD_SHARD")
    cooldown_questions: int = Field(5, alias="QABOT_COOLDOWN_QUESTIONS", ge=1)
    cooldown_seconds: float = Field(60.0, alias="QABOT_COOLDOWN_SECONDS", gt=0)
    answers: int = Field(3, alias="QABOT_ANSWERS", ge=1, le=10)
    feed_sync_minutes: float = Field(30.0, alias="QABOT_FEED_SYNC_MINUTES", ge=0)
    # Conversations nobody added to for this many days are forgotten (0: kept for ever).
    conversation_days: float = Field(30.0, alias="QABOT_CONVERSATION_DAYS", ge=0)
    # The confidence below which nothing is quoted: lenient, balanced, strict, or a number.
    abstain: float = Field(ABSTAIN_LEVELS["balanced"], alias="QABOT_ABSTAIN", ge=0, le=2)
    # PostgreSQL as the store of truth (store/postgres.py), a libpq URI
    # (postgresql://user:password@host:5432/db); None: SQLite in the data folder. Secret: it
    # may carry a password, and is only ever shown masked.
    database_url: SecretStr | None = Field(None, alias="QABOT_DATABASE_URL")
    # The answer checker (retriever/checker.py) reranks the best candidates and gives the
    # confidence that abstention reads: on or off.
    checker: bool = Field(False, alias="QABOT_CHECKER")
    # Qdrant for the search indexes (store/indexes/qdrant.py): http(s)://host:6333 for a
    # server, edge: or edge:///folder for Qdrant's engine in this process; None: local.
    # Secret: a URL may carry a password, and is only ever shown masked.
    qdrant_url: SecretStr | None = Field(None, alias="QABOT_QDRANT_URL")
    qdrant_api_key: SecretStr | None = Field(None, alias="QABOT_QDRANT_API_KEY")
    # The start of the Qdrant collections' names, one per qabot store sharing a server.
    qdrant_prefix: str = Field(
        "qabot", alias="QABOT_QDRANT_PREFIX", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
    )

    @field_validator("discord_channels", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(v) for v in value.replace(",", " ").split()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("discord_shard")
    @classmethod
    def _shard(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.replace(" ", "")
        found = re.fullmatch(r"(\d+(?:,\d+)*)/(\d+)", value)
        if found is None:
            raise ValueError(
                f"{value!r} is not IDS/COUNT; write 0/2 for shard 0 of 2, or 0,1/4 for "
                "shards 0 and 1 of 4"
            )
        ids, count = [int(i) for i in found[1].split(",")], int(found[2])
        wrong = [i for i in ids if i >= count]
        if count < 1 or wrong or len(set(ids)) != len(ids):
            raise ValueError(
                f"{value!r}: each shard id must be below the count, {count}, and named once"
            )
        return value

    @property
    def discord_shards(self) -> tuple[list[int], int] | None:
        """The shard ids this process runs and the shard count, from QABOT_DISCORD_SHARD."""
        if self.discord_shard is None:
            return None
        ids, count = self.discord_shard.split("/")
        return [int(i) for i in ids.split(",")], int(count)

    @field_validator("database_url")
    @classmethod
    def _libpq_uri(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError(
                "QABOT_DATABASE_URL must be a postgresql:// URI "
                "(postgresql://user:password@host:5432/database), or empty for SQLite"
            )
        return value

    @field_validator("checker", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        if isinstance(value, str):
            word = value.strip().lower()
            if word not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{value!r} is not on or off")
            return word in ("on", "true", "1", "yes")
        return value

    @field_validator("abstain", mode="before")
    @classmethod
    def _abstain_level(cls, value: object) -> object:
        if isinstance(value, str) and not _is_number(value):
            level = value.strip().lower()
            if level not in ABSTAIN_LEVELS:
                raise ValueError(
                    f"{value!r} is not one of {', '.join(ABSTAIN_LEVELS)} or a number from 0 to 2"
                )
            return ABSTAIN_LEVELS[level]
        return value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "qabot.sqlite3"

    def has_store(self) -> bool:
        """Whether there is a store to read: a database named, or the data folder's file."""
        return self.database_url is not None or self.db_path.exists()

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    def require_token(self) -> str:
        """The Discord token, or a SettingsError saying where to put it."""
        token = self.discord_token.get_secret_value().strip() if self.discord_token else ""
        if token.lower() in _PLACEHOLDERS or token.startswith("<"):
            raise SettingsError(
                "DISCORD_TOKEN is not set; put your bot's token in .env (see .env.example) "
                "or the environment"
            )
        return token


def make_private(folder: Path) -> None:
    """Create the data folder readable by its owner only (0700), or make an existing one so.

    It holds every stored article and the socket `qabot ask` trusts. A folder of another
    user is left as it is, with a warning (`qabot ask` then refuses that user's socket).
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid():
        log.warning(
            "data folder %s belongs to uid %d, not to you; others may read it", folder, info.st_uid
        )
    elif mode & 0o077:
        try:
            folder.chmod(0o700)
        except OSError as exc:  # a read-only file system, say: still usable as it is
            log.warning("data folder %s is open to other users (%04o): %s", folder, mode, exc)
            return
        log.warning(
            "data folder %s was open to other users (%04o); made it private (0700)", folder, mode
        )


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `.env`, with command-line overrides on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        raise SettingsError(
            f"setting {name}: {first['msg'].removeprefix('Value error, ')}; "
            "fix it in .env or the environment"
        ) from exc
    except SourceError as exc:  # a value that is not valid JSON where JSON is expected
        raise SettingsError(f"{exc}; fix it in .env or the environment") from exc
