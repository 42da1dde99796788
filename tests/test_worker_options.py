"""Every option of the worker command is checked before anything starts, and Redis refusing
us (no password, a wrong one, a database it lacks) is told apart from Redis being away."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_server import RedisServer, free_port, running_redis

from eda_lesson.shop.services import Shop
from eda_lesson.transport.redis_streams import (
    RedisRefusedError,
    RedisUnavailableError,
    check_redis_url,
    connect,
)
from eda_lesson.transport.worker import Worker, main

TESTS = Path(__file__).resolve().parent
SECRET = "s3cret-Pa55"


def _command(*arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "eda_lesson.transport.worker", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path, **env},
    )


def _usage_error(capsys: pytest.CaptureFixture[str], *arguments: str) -> str:
    """Run main() in this process; it must exit 2 before touching Redis. Its stderr."""
    with pytest.raises(SystemExit) as stopped:
        main(["--handlers", "test_worker:register", *arguments])
    assert stopped.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server that requires the password SECRET."""
    with running_redis(tmp_path / "redis", password=SECRET) as server:
        yield server


# ---------------------------------------------------------------------- numbers and names


@pytest.mark.parametrize(
    ("option", "value", "wanted"),
    [
        ("--wait-for-redis", "nan", "a number of seconds from 0"),
        ("--wait-for-redis", "inf", "a number of seconds from 0"),
        ("--wait-for-redis", "-1", "a number of seconds from 0"),
        ("--wait-for-redis", "soon", "a number of seconds from 0"),
        ("--reconnect-for", "nan", "a number of seconds from 0"),
        ("--trim-every", "-inf", "a number of seconds from 0"),
        ("--keep-stream-for", "1e400", "a number of seconds from 0"),
        ("--remember-processed-for", "NaN", "a number of seconds from 0"),
        ("--batch", "0", "a whole number from 1"),
        ("--batch", "-5", "a whole number from 1"),
        ("--batch", "1.5", "a whole number from 1"),
        ("--batch", "1e3", "a whole number from 1"),
        ("--batch", "\u0661", "a whole number from 1"),
        ("--block-ms", "0", "a whole number from 1"),
        ("--max-deliveries", "0", "a whole number from 1"),
        ("--claim-idle-ms", "-1", "a whole number from 0"),
        ("--stop-after", "0", "a whole number from 1"),
        ("--max-entry-bytes", "0", "a whole number from 1"),
        ("--consumer", "", "a non-empty name"),
        ("--consumer", "w1\nw2 handled", "no newline or control character"),
        ("--stream", "x" * 201, "at most 200 printable characters"),
        ("--group", "\x1b[31m", "no newline or control character"),
        ("--unknown-events", "drop", "invalid choice"),
    ],
)
def test_a_bad_option_is_refused_up_front_naming_the_option_and_an_example(
    capsys: pytest.CaptureFixture[str], option: str, value: str, wanted: str
) -> None:
    error = _usage_error(capsys, f"{option}={value}")
    assert f"argument {option}: " in error
    assert wanted in error
    if "number" in wanted:
        assert f"such as {option} " in error, "an example of a good value"
    assert "Traceback" not in error


@pytest.mark.parametrize(
    ("url", "wanted"),
    [
        ("redis://127.0.0.1:6379/abc", "names the database 'abc'; a database is a number"),
        ("redis://127.0.0.1:6379/0/1", "names the database '0/1'"),
        ("redis://127.0.0.1:99999/0", "cannot be read (Port out of range"),
        ("redis://127.0.0.1:port/0", "cannot be read"),
        ("redis://127.0.0.1:0/0", "has port 0"),
        ("http://127.0.0.1:6379/0", "starts with http://; it starts with redis://"),
        ("127.0.0.1:6379", "it starts with redis://"),
        ("redis://127.0.0.1:6379/0?db=x", "has db='x'"),
        ("redis://[::1/0", "cannot be read"),
        ("unix://", "names no socket"),
    ],
)
def test_a_redis_url_redis_py_would_misread_is_refused_with_a_good_example(
    capsys: pytest.CaptureFixture[str], url: str, wanted: str
) -> None:
    error = _usage_error(capsys, "--redis-url", url)
    assert "argument --redis-url: " in error
    assert wanted in error
    assert "redis://127.0.0.1:6379/0" in error, "an example of a good URL"
    with pytest.raises(ValueError, match="the Redis URL"):
        check_redis_url(url)
    with pytest.raises(ValueError, match="the Redis URL"):
        connect(url)


def test_a_password_in_a_bad_url_is_never_repeated(capsys: pytest.CaptureFixture[str]) -> None:
    error = _usage_error(capsys, "--redis-url", f"redis://:{SECRET}@127.0.0.1:6379/abc")
    assert SECRET not in error
    assert "redis://:***@127.0.0.1:6379/abc" in error


def test_a_bad_redis_url_in_the_environment_is_named_as_such() -> None:
    run = _command("--handlers", "test_worker:register", REDIS_URL="redis://127.0.0.1:6379/abc")
    assert run.returncode == 2
    assert "REDIS_URL: the Redis URL redis://127.0.0.1:6379/abc names the database 'abc'" in (
        run.stderr
    )
    assert "Traceback" not in run.stderr


def test_good_urls_pass_the_check_unchanged() -> None:
    for url in (
        "redis://127.0.0.1:6379/0",
        "redis://127.0.0.1:6379",
        "redis://127.0.0.1/",
        "rediss://user:pw@example.org:6380/3",
        "redis://:pw@localhost:6379/15?socket_timeout=5",
        "unix:///run/redis.sock?db=2",
    ):
        assert check_redis_url(url) == url


def test_the_python_worker_refuses_durations_that_are_not_finite(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    with pytest.raises(ValueError, match="reconnect_for is a number of seconds from 0"):
        Worker(Shop().register, client=client, reconnect_for=float("nan"))
    with pytest.raises(ValueError, match="trim_every is a number of seconds from 0"):
        Worker(Shop().register, client=client, trim_every=-1)
    worker = Worker(Shop().register, client=client)
    with pytest.raises(ValueError, match="wait_for is a number of seconds from 0"):
        worker.connect(wait_for=float("nan"))
    with pytest.raises(ValueError, match="stop_after is a positive whole number"):
        worker.run(stop_after=0)
    with pytest.raises(ValueError, match="consumer is a name of at most 200 printable"):
        Worker(Shop().register, client=client, consumer="a\nb")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


# ---------------------------------------------------------------------- refused, not away


def test_a_database_the_server_lacks_is_named_with_the_fix_not_a_traceback(
    redis_server: RedisServer,
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/99"
    run = _command("--handlers", "test_worker:register", "--redis-url", url)
    assert run.returncode == 4, run.stderr
    assert f"Redis at {url} refused us: DB index is out of range" in run.stderr
    assert "it has no database 99: use a number below its `databases` setting" in run.stderr
    assert f"redis://127.0.0.1:{redis_server.port}/0" in run.stderr
    assert "cannot reach" not in run.stderr and "Traceback" not in run.stderr


def test_a_missing_password_is_told_apart_from_an_unreachable_server(
    locked: RedisServer,
) -> None:
    run = _command(
        "--handlers", "test_worker:register", "--redis-url", locked.address,
        "--wait-for-redis", "10",
    )  # fmt: skip
    assert run.returncode == 4, run.stderr
    assert f"Redis at {locked.address} refused us" in run.stderr
    assert "this server requires a password: put it in --redis-url or REDIS_URL" in run.stderr
    assert f"redis://:PASSWORD@127.0.0.1:{locked.port}/0" in run.stderr
    assert "cannot reach" not in run.stderr and "Traceback" not in run.stderr


def test_a_wrong_password_is_named_and_never_printed(locked: RedisServer) -> None:
    wrong = "not-the-password"
    url = f"redis://:{wrong}@127.0.0.1:{locked.port}/0"
    run = _command("--handlers", "test_worker:register", "--redis-url", url)
    assert run.returncode == 4, run.stderr
    assert "the user name or password is wrong: check the one in --redis-url" in run.stderr
    assert wrong not in run.stderr and SECRET not in run.stderr
    assert "cannot reach" not in run.stderr
    user = _command(
        "--handlers", "test_worker:register",
        "--redis-url", f"redis://nobody:{wrong}@127.0.0.1:{locked.port}/0",
    )  # fmt: skip
    assert user.returncode == 4
    assert "user name or password is wrong" in user.stderr


def test_the_right_password_works_from_the_url_and_from_redis_url(locked: RedisServer) -> None:
    common = ("--handlers", "test_worker:register", "--stream", "orders", "--until-idle")
    assert _command(*common, "--redis-url", locked.url).returncode == 0
    from_environment = _command(*common, REDIS_URL=locked.url)
    assert from_environment.returncode == 0, from_environment.stderr
    assert SECRET not in from_environment.stderr


def test_a_refusal_is_not_waited_on_but_an_unreachable_server_is(locked: RedisServer) -> None:
    worker = Worker(Shop().register, redis_url=locked.address)
    started = time.monotonic()
    with pytest.raises(RedisRefusedError, match="requires a password"):
        worker.connect(wait_for=30)
    assert time.monotonic() - started < 5, "waiting does not mend a missing password"
    assert not isinstance(RedisRefusedError("u", "p", "f"), ConnectionError)
    away = Worker(Shop().register, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(RedisUnavailableError):
        away.connect(wait_for=0.5)
    assert time.monotonic() - started >= 0.3, "an unreachable server is given its time"


def test_a_user_without_rights_is_told_what_it_lacks(redis_server: RedisServer) -> None:
    admin = redis.Redis(port=redis_server.port)
    admin.acl_setuser("reader", enabled=True, passwords=["+pw"], keys=["other*"],
                      commands=["+@all"])  # fmt: skip
    run = _command(
        "--handlers", "test_worker:register", "--stream", "orders",
        "--redis-url", f"redis://reader:pw@127.0.0.1:{redis_server.port}/0",
    )  # fmt: skip
    assert run.returncode == 4, run.stderr
    assert "the user 'reader' may not use these keys or commands" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_help_lists_the_new_options_and_exit_codes() -> None:
    run = _command("--help")
    text = " ".join(run.stdout.split())
    for option in (
        "--unknown-events {park,dead-letter}",
        "--max-entry-bytes N",
        "--trim-every SECONDS",
        "--keep-stream-for SECONDS",
        "--remember-processed-for SECONDS",
        "--dead-letters ACTION [ID ...]",
        "--parked ACTION [ID ...]",
    ):
        assert option in text, option
    assert "4 Redis refused us (password, user or database)" in text


def test_running_without_handlers_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--stream", "orders"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--handlers MODULE:FUNCTION is required to run a worker" in error
