"""A Redis server for notebook 11: the one already running, or one of our own.

``find_or_start()`` first looks for a Redis at ``REDIS_URL`` (else 127.0.0.1:6379, where
Binder's start script runs one). When none answers it starts ``redis-server`` itself, bound to
127.0.0.1 on a free port, in memory only, in a temporary folder; ``stop()`` ends that server
and leaves a server it did not start alone. When ``redis-server`` is not installed it says
how to install it.

It is a notebook's helper, not a library: no retries, no configuration, nothing saved.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

INSTALL = (
    "redis-server is not installed. Install it, then run this cell again:\n"
    "  Debian/Ubuntu: sudo apt-get install redis-server\n"
    "  macOS:         brew install redis\n"
    "  conda:         conda install -c conda-forge redis-server\n"
    "or start a Redis anywhere and set REDIS_URL (redis://host:port/0) before starting Jupyter."
)


class LocalRedis:
    """A Redis to talk to, and whether this notebook started it (and must stop it)."""

    def __init__(self, url: str, process: subprocess.Popen[bytes] | None = None) -> None:
        self.url = url
        self.process = process

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        """Stop the server if this notebook started it; a server found running stays up."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __repr__(self) -> str:  # no port, no pid: the notebook's output stays the same
        return "LocalRedis(ready)" if self.answers() else "LocalRedis(stopped)"

    def answers(self) -> bool:
        return _answers(self.url)


def find_or_start() -> LocalRedis:
    """The Redis at REDIS_URL (or 127.0.0.1:6379) if one answers, else a new local one."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if _answers(url):
        return LocalRedis(url)
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(INSTALL)
    folder = Path(tempfile.mkdtemp(prefix="eda-lesson-redis-"))
    port = _free_port()
    with open(folder / "redis.log", "wb") as log:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = LocalRedis(f"redis://127.0.0.1:{port}/0", process)
    deadline = time.monotonic() + 10
    while not server.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"redis-server did not start; see {folder / 'redis.log'}")
        time.sleep(0.02)
    return server


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
