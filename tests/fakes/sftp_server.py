"""A real SFTP server on 127.0.0.1 (asyncssh's own), rooted in a folder, for drop-folder tests.

It runs in a thread with its own event loop, so a test can use it from async code and from the
command line alike. It has a generated host key, and one account that logs in with a password
or a generated client key (``logins`` records which). Tests put files in its folder directly, as
the SIS would upload them, to set their size and modification time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

START_TIMEOUT_SECONDS = 10.0
USERNAME = "riverside-sis"
PASSWORD = "correct horse battery staple"


@dataclass
class FakeSftp:
    """The running server: where it listens, its folder, its keys and its account."""

    root: Path
    host_key: asyncssh.SSHKey
    client_key_file: Path
    port: int = 0
    username: str = USERNAME
    password: str = PASSWORD
    logins: list[str] = field(default_factory=list)  # "password" or "publickey", per login

    @property
    def host_key_fingerprint(self) -> str:
        """The SHA256 fingerprint of the host key, as `ssh-keygen -l` prints it."""
        return self.host_key.get_fingerprint("sha256")

    def url(self, path: str = "/drop") -> str:
        return f"sftp://127.0.0.1:{self.port}{path}"

    def known_hosts_line(self) -> str:
        """The server's line of an OpenSSH known_hosts file."""
        public = self.host_key.export_public_key("openssh").decode().strip()
        return f"[127.0.0.1]:{self.port} {public}\n"


class _Account(asyncssh.SSHServer):
    def __init__(self, fake: FakeSftp, client_key: asyncssh.SSHKey) -> None:
        self.fake = fake
        self.client_key = client_key
        self.method = ""

    def begin_auth(self, username: str) -> bool:
        return True  # every login must authenticate

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        self.method = "password"
        return username == self.fake.username and password == self.fake.password

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Asked twice per login (is the key acceptable, then its signature checked).
        self.method = "publickey"
        return username == self.fake.username and key.public_data == self.client_key.public_data

    def auth_completed(self) -> None:
        self.fake.logins.append(self.method)


@contextmanager
def serve_sftp(root: Path, keys: Path) -> Iterator[FakeSftp]:
    """Serve ``root`` over SFTP on 127.0.0.1 for the block (the client sees it as ``/``).

    The client's private key is written to ``keys/client_key`` (OpenSSH format, unencrypted).
    """
    root.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key_file = keys / "client_key"
    client_key.write_private_key(str(client_key_file))
    client_key_file.chmod(0o600)
    fake = FakeSftp(root=root, host_key=host_key, client_key_file=client_key_file)

    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    acceptor: list[asyncssh.SSHAcceptor] = []

    async def start() -> None:
        server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            server_factory=lambda: _Account(fake, client_key),
            sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=str(root).encode()),
            allow_scp=False,
        )
        fake.port = server.sockets[0].getsockname()[1]
        acceptor.append(server)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as error:  # reported to the test below
            failure.append(error)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-sftp", daemon=True)
    thread.start()
    started.wait(START_TIMEOUT_SECONDS)
    if failure:
        raise failure[0]
    try:
        yield fake
    finally:

        async def stop() -> None:
            acceptor[0].close()
            await acceptor[0].wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(START_TIMEOUT_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_SECONDS)
        loop.close()
