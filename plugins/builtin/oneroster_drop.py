"""OneRoster drop folders: the newest complete CSV bundle a SIS (or ClassLink Roster Server) leaves
in an SFTP folder, or in a local folder, on its own schedule.

Each sync looks at the folder once:

1. It lists the folder's files (not its subfolders) whose names match ``pattern`` (a glob, letter
   case ignored, ``*.zip`` by default), leaving out names of uploads in progress: dotfiles and
   ``*.part``, ``*.filepart``, ``*.partial``, ``*.tmp``, ``*.temp``.
2. A file is complete once its size and modification time have stayed the same across two
   looks ``settle_seconds`` apart, measured on the host's clock (the first look only notes the
   file; with ``settle_seconds = 0`` the first look takes it: for senders that upload under a
   temporary name and rename when done).
3. It takes the newest complete file (by modification time, then name) that is newer than the
   file it last read, downloads it into a private temporary file (streamed, never held in
   memory) and reads it with the OneRoster CSV source's reader (``oneroster_csv.read_bundle``).
   A file already read (same name, size and modification time) is not read again, and a file
   older than the last one read never replaces its newer roster.
4. Nothing new (no file, only the file already read, or a file still arriving) is not a
   failure: the sync answers ``RosterUnchanged`` with what it found, and the roster stays.
5. Once the service has kept what was read (applied, held for confirmation or superseded; not
   when the sync failed), the file is moved to ``archive_folder``, deleted, or left in place, as
   ``after_sync`` says. A move or deletion that fails is tried again at the next look.

What was read and what was seen is remembered in ``<data_dir>/drop-folders/<slug>/`` (one small
JSON file per folder and pattern), so each host that runs syncs remembers on its own: with
several hosts, use ``after_sync = "archive"`` or ``"delete"``.

Options (``[districts.<slug>.roster_sources.<name>.options]``):

- ``folder`` (required): ``sftp://[user@]host[:port]/path`` (``/~/path`` for a path in the
  account's home folder) or a local folder's path;
- ``pattern``, ``settle_seconds`` (60), ``after_sync`` (``archive``, ``delete`` or ``keep``),
  ``archive_folder`` (``processed``, relative to the folder unless absolute), ``allow_delta``;
- SFTP only: ``username`` (or in the URL), ``password`` and/or ``private_key`` (an OpenSSH or
  PEM private key file) with ``passphrase``; the server's host key pinned by
  ``host_key_fingerprint`` (``SHA256:...``, one or a list) and/or ``known_hosts`` (an OpenSSH
  known_hosts file); ``timeout_seconds`` (30). An unpinned host key is refused, and the
  message shows its fingerprint for the administrator to check and pin.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import os
import posixpath
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import unquote, urlsplit

import asyncssh
from pydantic import Field, SecretStr, field_validator, model_validator

from manage1to1_plugins import (
    AfterSync,
    DistrictRef,
    IntakeWarning,
    PluginHost,
    QuarantinedRow,
    RosterDelta,
    RosterSource,
    RosterUnchanged,
    SourceError,
    SourceOptions,
    StudentRecord,
    hookimpl,
)
from plugins.builtin.oneroster_csv import read_bundle

DEFAULT_PATTERN = "*.zip"
DEFAULT_SETTLE_SECONDS = 60.0
DEFAULT_ARCHIVE_FOLDER = "processed"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_SFTP_PORT = 22
# Names uploading clients give a file until it is complete (WinSCP, FileZilla, lftp, rsync...).
PARTIAL_SUFFIXES = (".part", ".filepart", ".partial", ".tmp", ".temp")
STATE_FOLDER = "drop-folders"
DOWNLOADS_FOLDER = "downloads"
FORGOTTEN_AFTER_SECONDS = 86_400
SFTP_ONLY = (
    "username",
    "password",
    "private_key",
    "passphrase",
    "host_key_fingerprint",
    "known_hosts",
)
FINGERPRINT_PREFIX = "SHA256:"
FINGERPRINT_LENGTH = 43  # unpadded base64 of a SHA-256 digest
KEEPALIVE_SECONDS = 15  # a silent server is given up after four unanswered keepalives


class OneRosterDropOptions(SourceOptions):
    """The options of a drop folder (see the module's docstring)."""

    folder: str | None = None
    pattern: str = DEFAULT_PATTERN
    settle_seconds: float = Field(default=DEFAULT_SETTLE_SECONDS, ge=0, le=86_400)
    after_sync: Literal["archive", "delete", "keep"] = "archive"
    archive_folder: str = DEFAULT_ARCHIVE_FOLDER
    allow_delta: bool = False
    username: str | None = None
    password: SecretStr | None = None  # hidden from the options' repr and logs
    private_key: str | None = None
    passphrase: SecretStr | None = None
    host_key_fingerprint: tuple[str, ...] = ()
    known_hosts: str | None = None
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=600)

    @field_validator("host_key_fingerprint", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_fingerprint(text) for text in value)

    @field_validator("pattern")
    @classmethod
    def _file_name_pattern(cls, value: str) -> str:
        if not value.strip() or "/" in value or "\\" in value:
            raise ValueError(
                f"{value!r} is not a file name pattern (a glob such as '*.zip', no folder)"
            )
        return value.strip()

    @model_validator(mode="after")
    def _a_usable_folder(self) -> OneRosterDropOptions:
        # Checked as a fetch checks it, with the same words.
        try:
            DropFolder.of(self)
        except SourceError as error:
            raise ValueError(str(error)) from None
        return self


def _fingerprint(text: str) -> str:
    """A pinned SHA256 fingerprint as `ssh-keygen -l` prints it ("SHA256:" and 43 characters)."""
    written = text.strip()
    digest = written[len(FINGERPRINT_PREFIX) :] if written.upper().startswith("SHA256:") else ""
    if len(digest) != FINGERPRINT_LENGTH:
        raise ValueError(
            f"{text!r} is not a SHA256 host key fingerprint as `ssh-keygen -l` prints it "
            f"(SHA256: and {FINGERPRINT_LENGTH} characters)"
        )
    return FINGERPRINT_PREFIX + digest


# --- Where the folder is --------------------------------------------------------------------


@dataclass(frozen=True)
class SftpLocation:
    host: str
    port: int
    path: str  # on the server: absolute, or relative to the account's home folder
    username: str

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def shown(self) -> str:
        """The folder as messages name it (never with credentials)."""
        if self.path.startswith("/"):
            path = self.path
        else:
            path = "/~" if self.path == "." else f"/~/{self.path}"
        return f"sftp://{self.address}{path}"


@dataclass(frozen=True)
class DropFolder:
    """The configured folder: an SFTP location or a local folder, and how messages name it."""

    sftp: SftpLocation | None
    local: Path | None
    shown: str

    @classmethod
    def of(cls, options: OneRosterDropOptions) -> DropFolder:
        """The folder of ``options``; SourceError saying what is wrong with them."""
        folder = (options.folder or "").strip()
        if not folder:
            raise SourceError(
                "A OneRoster drop folder needs option folder: an sftp://host/path URL or a "
                "local folder's path."
            )
        if "://" not in folder:
            given = [name for name in SFTP_ONLY if getattr(options, name)]
            if given:
                raise SourceError(
                    f"Options {', '.join(given)} are for an sftp:// folder; {folder!r} is a "
                    "local folder."
                )
            return cls(sftp=None, local=Path(folder), shown=folder)
        location = _sftp_location(folder, options.username)
        if not (options.password or options.private_key):
            raise SourceError(
                f"The SFTP folder {location.shown} needs option password or private_key (a key "
                "file) to log in."
            )
        return cls(sftp=location, local=None, shown=location.shown)

    @property
    def identity(self) -> str:
        """What names this folder in the remembered state, whatever its spelling."""
        if self.sftp is not None:
            return f"sftp://{self.sftp.username}@{self.sftp.host}:{self.sftp.port}/{self.sftp.path}"
        assert self.local is not None
        return f"file://{self.local.resolve()}"

    def under(self, folder: str) -> str:
        """``folder`` (the archive) as a path on the same side: relative to this folder, unless
        absolute."""
        if self.sftp is not None:
            return posixpath.normpath(posixpath.join(self.sftp.path or ".", folder))
        assert self.local is not None
        return str(self.local / folder)


def _sftp_location(url: str, username: str | None) -> SftpLocation:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_SFTP_PORT
    except ValueError as error:
        raise SourceError(f"folder {url!r} is not a valid URL ({error}).") from None
    if parts.scheme.lower() != "sftp":
        raise SourceError(
            f"folder {url!r}: only sftp:// URLs or local folder paths can be drop folders."
        )
    if not parts.hostname:
        raise SourceError(f"folder {url!r} names no host.")
    if parts.password is not None:
        raise SourceError(
            "The folder URL must not carry a password: give it in option password (or an "
            "environment variable)."
        )
    if parts.query or parts.fragment:
        raise SourceError(f"folder {url!r}: an SFTP folder URL has no ?query or #fragment.")
    in_url = unquote(parts.username) if parts.username else None
    if in_url and username and in_url != username:
        raise SourceError(
            f"The folder URL names user {in_url!r} and option username {username!r}: give one."
        )
    user = in_url or username
    if not user:
        raise SourceError(
            f"The SFTP folder {url!r} needs a user name: sftp://user@host/path or option username."
        )
    path = unquote(parts.path) or "."
    if path == "/~" or path.startswith("/~/"):
        path = path[3:] or "."  # relative to the account's home folder
    return SftpLocation(host=parts.hostname, port=port, path=path, username=user)


# --- The files of a folder ---------------------------------------------------------------------


@dataclass(frozen=True)
class DropFile:
    name: str
    size: int
    mtime: float  # seconds since the epoch, as the folder reports it

    @property
    def order(self) -> tuple[float, str]:
        """Newest last: by modification time, then name."""
        return (self.mtime, self.name)

    def describe(self) -> str:
        modified = datetime.fromtimestamp(self.mtime, UTC).strftime("%Y-%m-%d %H:%M:%S %Z")
        return f"{self.name} ({self.size:,} bytes, modified {modified})"


def looks_partial(name: str) -> bool:
    """Whether ``name`` is that of an upload still in progress (or of a hidden file)."""
    return name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES)


class FolderSession(Protocol):
    """One visit to the folder: list, download, archive or delete its files."""

    async def files(self) -> list[DropFile]:
        """The folder's regular files (not subfolders)."""
        ...

    async def download(self, file: DropFile, target: Path) -> DropFile:
        """Copy ``file`` into ``target`` (which exists, private), streamed; the file as the
        folder lists it once it is copied (to see whether it changed meanwhile)."""
        ...

    async def archive(self, file: DropFile, folder: str, stamp: str) -> str:
        """Move ``file`` into ``folder`` (made when missing), under its name or, when that is
        taken, with ``stamp`` added; the name it has there."""
        ...

    async def delete(self, file: DropFile) -> None: ...


def _archived_names(name: str, stamp: str) -> Iterator[str]:
    yield name
    stem, dot, suffix = name.partition(".")
    for attempt in range(1, 100):
        extra = f"-{stamp}" + (f"-{attempt}" if attempt > 1 else "")
        yield f"{stem}{extra}{dot}{suffix}"


class LocalSession:
    def __init__(self, folder: Path, shown: str) -> None:
        self.folder = folder
        self.shown = shown

    async def files(self) -> list[DropFile]:
        return await asyncio.to_thread(self._files)

    def _files(self) -> list[DropFile]:
        if not self.folder.is_dir():
            raise SourceError(f"The drop folder {self.shown} does not exist (or is not a folder).")
        found = []
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        found.append(DropFile(entry.name, info.st_size, info.st_mtime))
        except OSError as error:
            raise SourceError(
                f"Cannot list the drop folder {self.shown}: {error.strerror or error}."
            ) from None
        return found

    async def download(self, file: DropFile, target: Path) -> DropFile:
        return await asyncio.to_thread(self._copy, file, target)

    def _copy(self, file: DropFile, target: Path) -> DropFile:
        source = self.folder / file.name
        try:
            with open(source, "rb") as reader, open(target, "wb") as writer:
                shutil.copyfileobj(reader, writer, 1024 * 1024)
            info = os.stat(source)
        except FileNotFoundError:
            raise _Vanished(file) from None
        except OSError as error:
            raise SourceError(
                f"Cannot read {file.name} in {self.shown}: {error.strerror or error}."
            ) from None
        return DropFile(file.name, info.st_size, info.st_mtime)

    async def archive(self, file: DropFile, folder: str, stamp: str) -> str:
        return await asyncio.to_thread(self._archive, file, Path(folder), stamp)

    def _archive(self, file: DropFile, folder: Path, stamp: str) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        for name in _archived_names(file.name, stamp):
            if not (folder / name).exists():
                shutil.move(self.folder / file.name, folder / name)
                return name
        raise SourceError(f"No free name for {file.name} in the archive folder.")

    async def delete(self, file: DropFile) -> None:
        await asyncio.to_thread((self.folder / file.name).unlink)


class SftpSession:
    def __init__(self, sftp: asyncssh.SFTPClient, location: SftpLocation) -> None:
        self.sftp = sftp
        self.location = location
        self.path = location.path

    def _remote(self, name: str) -> str:
        return posixpath.join(self.path, name)

    async def files(self) -> list[DropFile]:
        try:
            names = await self.sftp.readdir(self.path)
        except asyncssh.SFTPNoSuchFile:
            raise SourceError(f"The drop folder {self.location.shown} does not exist.") from None
        except asyncssh.SFTPError as error:
            raise SourceError(
                f"Cannot list the drop folder {self.location.shown}: {error.reason}."
            ) from None
        found = []
        for entry in names:
            name = entry.filename if isinstance(entry.filename, str) else entry.filename.decode()
            attrs = entry.attrs
            if attrs.permissions is not None and not stat.S_ISREG(attrs.permissions):
                continue  # folders, links and devices are not files the SIS dropped
            if attrs.size is None or attrs.mtime is None:
                continue
            mtime = attrs.mtime + (attrs.mtime_ns or 0) / 1e9
            found.append(DropFile(name, attrs.size, mtime))
        return found

    async def download(self, file: DropFile, target: Path) -> DropFile:
        remote = self._remote(file.name)
        try:
            await self.sftp.get(remote, str(target))
            attrs = await self.sftp.stat(remote)
        except asyncssh.SFTPNoSuchFile:
            raise _Vanished(file) from None
        except asyncssh.SFTPError as error:
            raise SourceError(
                f"Cannot download {file.name} from {self.location.shown}: {error.reason}."
            ) from None
        except OSError as error:  # writing the private copy
            raise SourceError(
                f"Cannot store the download of {file.name} in the service's data folder: "
                f"{error.strerror or error}."
            ) from None
        mtime = (attrs.mtime or 0) + (attrs.mtime_ns or 0) / 1e9
        return DropFile(file.name, attrs.size or 0, mtime)

    async def archive(self, file: DropFile, folder: str, stamp: str) -> str:
        await self.sftp.makedirs(folder, exist_ok=True)
        for name in _archived_names(file.name, stamp):
            target = posixpath.join(folder, name)
            if not await self.sftp.exists(target):
                # A plain SFTP rename never replaces a file: a name taken meanwhile fails it.
                await self.sftp.rename(self._remote(file.name), target)
                return name
        raise SourceError(f"No free name for {file.name} in the archive folder.")

    async def delete(self, file: DropFile) -> None:
        await self.sftp.remove(self._remote(file.name))


class _Vanished(Exception):
    """The file went away between the listing and the download (archived by another host, or
    replaced by the sender)."""

    def __init__(self, file: DropFile) -> None:
        super().__init__(file.name)
        self.file = file


# --- SFTP: connecting with a pinned host key ---------------------------------------------------


class _PinnedHostKey(asyncssh.SSHClient):
    """Accepts the server's host key only when pinned; remembers the key offered, so a refusal
    can show its fingerprint. (Keys in ``known_hosts`` are accepted before this is asked.)"""

    def __init__(self, fingerprints: tuple[str, ...]) -> None:
        self.fingerprints = frozenset(fingerprints)
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        return key.get_fingerprint("sha256") in self.fingerprints


@asynccontextmanager
async def sftp_session(
    location: SftpLocation, options: OneRosterDropOptions
) -> AsyncIterator[SftpSession]:
    """A logged-in SFTP session at ``location``; SourceError saying why there is none."""
    client = _PinnedHostKey(options.host_key_fingerprint)
    keys = _client_keys(options)
    known_hosts = _known_hosts(options)
    where = location.address
    try:
        connection = await asyncssh.connect(
            location.host,
            location.port,
            username=location.username,
            password=_secret(options.password),
            client_keys=keys,
            known_hosts=known_hosts,
            client_factory=lambda: client,
            # Only what the options say: no ~/.ssh/config, agent or default keys of the
            # account the service runs as.
            config=[],
            agent_path=None,
            x509_trusted_certs=None,
            connect_timeout=options.timeout_seconds,
            login_timeout=options.timeout_seconds,
            keepalive_interval=KEEPALIVE_SECONDS,
            keepalive_count_max=4,
        )
    except asyncssh.HostKeyNotVerifiable as error:
        raise SourceError(_host_key_refused(client.offered, location, error)) from None
    except asyncssh.PermissionDenied:
        raise SourceError(
            f"The SFTP server {where} refused the login of {location.username!r}: check "
            "options username, password, private_key and passphrase."
        ) from None
    except asyncssh.DisconnectError as error:
        raise SourceError(_closed(where, error)) from None
    except TimeoutError:
        raise SourceError(
            f"The SFTP server {where} did not answer within {options.timeout_seconds:g} s."
        ) from None
    except OSError as error:
        raise SourceError(
            f"Cannot connect to the SFTP server {where}: {error.strerror or error}."
        ) from None
    try:
        async with connection:
            try:
                sftp = await connection.start_sftp_client()
            except (asyncssh.ChannelOpenError, asyncssh.SFTPError) as error:
                raise SourceError(
                    f"The SFTP server {where} refused an SFTP session ({error.reason})."
                ) from None
            async with sftp:
                yield SftpSession(sftp, location)
    except asyncssh.DisconnectError as error:
        raise SourceError(_closed(where, error)) from None


def _closed(where: str, error: asyncssh.DisconnectError) -> str:
    return f"The SFTP server {where} closed the connection ({error.reason or 'no reason given'})."


def _host_key_refused(
    offered: asyncssh.SSHKey | None, location: SftpLocation, error: asyncssh.HostKeyNotVerifiable
) -> str:
    where = location.address
    if offered is None:
        return f"The SFTP server {where} was refused: {error.reason}."
    fingerprint = offered.get_fingerprint("sha256")
    return (
        f"The SFTP server {where} offered the host key {offered.get_algorithm()} {fingerprint}, "
        "which is not pinned, so it was refused: it may be another machine posing as the "
        "district's server. If it is the server's key (ask its administrator, or compare with "
        f"`ssh-keyscan -p {location.port} {location.host} | ssh-keygen -lf -`), pin it: "
        f'host_key_fingerprint = "{fingerprint}".'
    )


def _client_keys(options: OneRosterDropOptions) -> list[asyncssh.SSHKey] | None:
    if not options.private_key:
        return None
    try:
        return [asyncssh.read_private_key(options.private_key, _secret(options.passphrase))]
    except FileNotFoundError:
        raise SourceError(f"private_key: no key file at {options.private_key}.") from None
    except asyncssh.KeyEncryptionError:
        raise SourceError(
            f"private_key: the key file {options.private_key} is encrypted and the "
            "passphrase is missing or wrong (option passphrase)."
        ) from None
    except asyncssh.KeyImportError as error:
        if "passphrase" in str(error).lower():
            raise SourceError(
                f"private_key: the key file {options.private_key} is encrypted: give its "
                "passphrase in option passphrase."
            ) from None
        raise SourceError(
            f"private_key: {options.private_key} is not a private key file ({error})."
        ) from None
    except OSError as error:
        raise SourceError(
            f"private_key: cannot read {options.private_key}: {error.strerror or error}."
        ) from None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None


def _known_hosts(options: OneRosterDropOptions) -> Any:
    if not options.known_hosts:
        # No file: only pinned fingerprints are trusted (an empty list of keys, so that the
        # account's own ~/.ssh/known_hosts is not read).
        return ([], [], [])
    try:
        return asyncssh.read_known_hosts(options.known_hosts)
    except FileNotFoundError:
        raise SourceError(f"known_hosts: no file at {options.known_hosts}.") from None
    except (OSError, ValueError) as error:
        raise SourceError(f"known_hosts: cannot read {options.known_hosts} ({error}).") from None


@asynccontextmanager
async def folder_session(
    folder: DropFolder, options: OneRosterDropOptions
) -> AsyncIterator[FolderSession]:
    if folder.sftp is not None:
        async with sftp_session(folder.sftp, options) as session:
            yield session
    else:
        assert folder.local is not None
        yield LocalSession(folder.local, folder.shown)


# --- What was seen and read, remembered between looks ------------------------------------------


@dataclass
class Seen:
    size: int
    mtime: float
    since: datetime  # the host's clock when the file was first seen with this size and time


@dataclass
class Read:
    name: str
    size: int
    mtime: float
    at: datetime  # when the service kept what was read

    def same_file(self, file: DropFile) -> bool:
        return (file.name, file.size, file.mtime) == (self.name, self.size, self.mtime)


@dataclass
class DropState:
    read: Read | None = None
    seen: dict[str, Seen] = field(default_factory=dict)
    tidy_problem: str | None = None  # why the file read could not be archived or deleted

    @classmethod
    def load(cls, path: Path) -> DropState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            read = data.get("read")
            return cls(
                read=Read(
                    read["name"],
                    int(read["size"]),
                    float(read["mtime"]),
                    datetime.fromisoformat(read["at"]),
                )
                if read
                else None,
                seen={
                    name: Seen(
                        int(item["size"]),
                        float(item["mtime"]),
                        datetime.fromisoformat(item["since"]),
                    )
                    for name, item in data.get("seen", {}).items()
                },
                tidy_problem=data.get("tidy_problem"),
            )
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls()  # unreadable: start afresh (at worst the newest file is read again)

    def save(self, path: Path) -> None:
        data = {
            "read": None
            if self.read is None
            else {
                "name": self.read.name,
                "size": self.read.size,
                "mtime": self.read.mtime,
                "at": self.read.at.isoformat(),
            },
            "seen": {
                name: {"size": item.size, "mtime": item.mtime, "since": item.since.isoformat()}
                for name, item in self.seen.items()
            },
            "tidy_problem": self.tidy_problem,
        }
        _make_private_folder(path.parent)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".state-")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1)
            os.replace(temporary, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary)
            raise


def _make_private_folder(path: Path) -> None:
    """``path`` and the folders above it that are missing, each for the owner only (student
    data waits there)."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with suppress(FileExistsError):
            folder.mkdir(mode=0o700)


# --- Choosing the file -----------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    file: DropFile | None
    note: str  # what was found, when nothing is taken


def choose(
    files: list[DropFile],
    state: DropState,
    *,
    pattern: str,
    settle_seconds: float,
    now: datetime,
    shown: str,
) -> Choice:
    """The newest complete file newer than the one last read (or why there is none), and the
    state's ``seen`` brought up to date with this look."""
    matching = [file for file in files if fnmatch.fnmatch(file.name.lower(), pattern.lower())]
    partial = sorted(file.name for file in matching if looks_partial(file.name))
    candidates = [
        file
        for file in matching
        if not looks_partial(file.name)
        and not (state.read is not None and state.read.same_file(file))
        and (state.read is None or file.order >= (state.read.mtime, state.read.name))
    ]
    seen = {}
    complete = []
    for file in candidates:
        before = state.seen.get(file.name)
        unchanged = before is not None and (before.size, before.mtime) == (file.size, file.mtime)
        since = before.since if before is not None and unchanged else now
        seen[file.name] = Seen(file.size, file.mtime, since)
        if settle_seconds == 0 or (unchanged and (now - since).total_seconds() >= settle_seconds):
            complete.append(file)
    state.seen = seen
    if complete:
        return Choice(max(complete, key=lambda file: file.order), "")
    ignored = (
        f" ({len(partial)} upload(s) in progress ignored: {', '.join(partial[:5])})"
        if partial
        else ""
    )
    if candidates:
        newest = max(candidates, key=lambda file: file.order)
        return Choice(
            None,
            f"Nothing new yet in {shown}: {newest.describe()} may still be arriving; it is read "
            f"once its size and modification time have stayed the same for "
            f"{settle_seconds:g} s (first seen {seen[newest.name].since:%Y-%m-%d %H:%M:%S %Z})."
            + ignored,
        )
    if state.read is not None:
        tidy = f" It could not be tidied away: {state.tidy_problem}" if state.tidy_problem else ""
        return Choice(
            None,
            f"Nothing new in {shown}: the newest file, {state.read.name}, was read on "
            f"{state.read.at:%Y-%m-%d %H:%M:%S %Z}.{tidy}" + ignored,
        )
    return Choice(None, f"Nothing new in {shown}: no file matches {pattern!r}." + ignored)


# --- The source --------------------------------------------------------------------------------


class OneRosterDropSource:
    name = "oneroster_drop"
    description = (
        "The newest OneRoster CSV bundle (.zip) a SIS drops in an SFTP folder or a local folder."
    )
    options_model: ClassVar[type[SourceOptions]] = OneRosterDropOptions

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    async def fetch_students(
        self, *, district: DistrictRef, options: OneRosterDropOptions | Mapping[str, Any]
    ) -> Iterator[StudentRecord | IntakeWarning | QuarantinedRow | AfterSync] | RosterDelta:
        config = OneRosterDropOptions.parse(options, district_slug=district.slug)
        return await _Look(self.host, district, config).records()


class _Look:
    """One look at the folder, and what follows it once the service kept what was read."""

    def __init__(self, host: PluginHost, district: DistrictRef, config: OneRosterDropOptions):
        self.host = host
        self.config = config
        self.folder = DropFolder.of(config)
        key = hashlib.sha256(f"{self.folder.identity}\n{config.pattern}".encode()).hexdigest()
        state_root = Path(host.settings.data_dir) / STATE_FOLDER
        self.state_file = state_root / district.slug / f"{key[:24]}.json"
        self.downloads = state_root / DOWNLOADS_FOLDER

    async def records(
        self,
    ) -> Iterator[StudentRecord | IntakeWarning | QuarantinedRow | AfterSync] | RosterDelta:
        state = DropState.load(self.state_file)
        async with folder_session(self.folder, self.config) as session:
            files = await session.files()
            leftover = next(
                (file for file in files if state.read and state.read.same_file(file)), None
            )
            if leftover is not None and self.config.after_sync != "keep":
                await self._tidy(session, leftover, state)
            choice = choose(
                files,
                state,
                pattern=self.config.pattern,
                settle_seconds=self.config.settle_seconds,
                now=self.host.clock(),
                shown=self.folder.shown,
            )
            state.save(self.state_file)
            if choice.file is None:
                raise RosterUnchanged(choice.note)
            copy = await self._download(session, choice.file, state)
        try:
            records = read_bundle(
                copy,
                checks=self.host.records,
                allow_delta=self.config.allow_delta,
                shown_as=f"{self.folder.shown}/{choice.file.name}",
            )
        except BaseException:
            copy.unlink(missing_ok=True)
            raise
        after_sync = AfterSync(self._after_sync(choice.file))
        if isinstance(records, RosterDelta):  # a delta bundle (allow_delta): its changes
            return RosterDelta(_then_after_sync(records.records, copy, after_sync))
        return _then_after_sync(records, copy, after_sync)

    async def _download(self, session: FolderSession, file: DropFile, state: DropState) -> Path:
        _make_private_folder(self.downloads)
        _remove_forgotten_downloads(self.downloads)
        # mkstemp makes the file for the owner only; the download writes into it.
        descriptor, name = tempfile.mkstemp(dir=self.downloads, prefix="bundle-", suffix=".zip")
        os.close(descriptor)
        copy = Path(name)
        try:
            after = await session.download(file, copy)
            if (after.size, after.mtime) != (file.size, file.mtime) or (
                copy.stat().st_size != file.size
            ):
                state.seen.pop(file.name, None)
                state.save(self.state_file)
                raise RosterUnchanged(
                    f"Nothing new yet in {self.folder.shown}: {file.name} changed while it was "
                    "read (still arriving); it is read once it has settled."
                )
        except _Vanished:
            copy.unlink(missing_ok=True)
            raise RosterUnchanged(
                f"Nothing new in {self.folder.shown}: {file.name} went away while it was read."
            ) from None
        except BaseException:
            copy.unlink(missing_ok=True)
            raise
        return copy

    def _after_sync(self, file: DropFile) -> Any:
        async def read_and_kept(outcome: str) -> None:
            state = DropState.load(self.state_file)
            # A newer file read by a sync that finished first stays the one last read.
            if state.read is None or file.order >= (state.read.mtime, state.read.name):
                state.read = Read(file.name, file.size, file.mtime, self.host.clock())
                state.tidy_problem = None
            state.seen.pop(file.name, None)
            state.save(self.state_file)
            if self.config.after_sync == "keep":
                return
            try:
                async with folder_session(self.folder, self.config) as session:
                    await self._tidy(session, file, state)
            except SourceError as error:  # the next look tries again
                state.tidy_problem = str(error)
                state.save(self.state_file)
                raise

        return read_and_kept

    async def _tidy(self, session: FolderSession, file: DropFile, state: DropState) -> None:
        """Archive or delete the file read; a failure is remembered (and shown while nothing is
        new) and the next look tries again."""
        try:
            if self.config.after_sync == "delete":
                await session.delete(file)
            else:
                stamp = self.host.clock().strftime("%Y%m%dT%H%M%SZ")
                await session.archive(file, self.folder.under(self.config.archive_folder), stamp)
            state.tidy_problem = None
        except (OSError, asyncssh.SFTPError, SourceError) as error:
            reason = error.reason if isinstance(error, asyncssh.SFTPError) else None
            reason = reason or (error.strerror if isinstance(error, OSError) else None)
            verb = "deleted" if self.config.after_sync == "delete" else "archived"
            state.tidy_problem = f"{file.name} could not be {verb} ({reason or error})."
        state.save(self.state_file)


def _remove_forgotten_downloads(folder: Path) -> None:
    """Remove copies a process stopped mid-sync left behind (a sync removes its own). Their age
    is the file system's, on its own clock: a day is far longer than any sync."""
    cutoff = time.time() - FORGOTTEN_AFTER_SECONDS
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with suppress(OSError):
                if entry.name.startswith("bundle-") and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)


def _then_after_sync(records: Iterator[Any], copy: Path, after_sync: AfterSync) -> Iterator[Any]:
    """The bundle's records, the private copy removed once they are read (or the reading
    stopped), then the step that archives or deletes the file once the service kept them."""
    try:
        yield from records
    finally:
        copy.unlink(missing_ok=True)
    yield after_sync


@hookimpl(trylast=True)
def register_roster_sources(host: PluginHost) -> list[RosterSource]:
    return [OneRosterDropSource(host)]
