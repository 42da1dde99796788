"""A real redis-server for tests: started on 127.0.0.1, on a free port, in a temporary folder.

Use the context manager ``running_redis(folder)`` or the fixture ``redis_server``. The server
runs in the foreground as our child process, so a test can SIGKILL it and start it again on
the same port and folder (``server.kill()``, ``server.start()``). ``password=...`` starts it
with ``--requirepass``, as a server that refuses clients without the password. When
``redis-server`` is not installed the tests skip, naming the install command; under CI
(``CI=true``) they fail.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from needs import missing

INSTALL = "sudo apt-get install redis-server"


def redis_server_binary() -> str:
    """The path of redis-server; skip the test (fail it under CI) when it is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing(
            f"redis-server is not installed; install it with `{INSTALL}`", "run the broker tests"
        )
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process we own: start, kill, start again, stop."""

    def __init__(
        self, folder: Path, *, appendonly: bool = False, binary: str = "", password: str = ""
    ) -> None:
        self.folder = folder
        self.appendonly = appendonly
        self.password = password
        self.binary = binary or redis_server_binary()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients use, with the password when the server requires one."""
        secret = f":{self.password}@" if self.password else ""
        return f"redis://{secret}127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        """The URL without any password."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port,
            password=self.password or None,
            decode_responses=True,
            socket_timeout=10,
        )

    def start(self) -> None:
        """Start the server (on the same port as before, after a kill) and wait for it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # a free port can be taken between probing and binding
            port = self.port or free_port()
            self.process = subprocess.Popen(
                self._command(port),
                stdout=open(self.folder / "redis.log", "ab"),  # noqa: SIM115 - the child owns it
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
            if self._wait_until_ready(port):
                self.port = port
                return
            self.stop()
        raise RuntimeError(f"redis-server did not start; see {self.folder / 'redis.log'}")

    def _command(self, port: int) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else []
        secret = ["--requirepass", self.password] if self.password else []
        return [
            self.binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            *persistence,
            *secret,
            "--dir", str(self.folder),
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def _wait_until_ready(self, port: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        probe = redis.Redis(
            port=port,
            password=self.password or None,
            socket_timeout=1,
            socket_connect_timeout=1,
        )
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                try:
                    if probe.ping():
                        return True
                except (redis.ConnectionError, redis.TimeoutError):  # incl. still loading
                    pass
                time.sleep(0.02)
            return False
        finally:
            probe.close()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (what it wrote to its files stays)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the server if it runs (terminate, and kill it if it lingers)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __repr__(self) -> str:
        return f"RedisServer(127.0.0.1:{self.port}, {'running' if self.process else 'stopped'})"


@contextmanager
def running_redis(
    folder: Path, *, appendonly: bool = False, password: str = ""
) -> Iterator[RedisServer]:
    """A started redis-server, stopped (always) when the block ends."""
    server = RedisServer(folder, appendonly=appendonly, password=password)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (no persistence)."""
    with running_redis(tmp_path / "redis") as server:
        yield server
