"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir, served on a Unix socket.

``postgres_server`` (session) starts it once; ``postgres_url`` gives each test a fresh database.
Tests skip, naming what was missing, where the server binaries or psycopg are absent.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Candidate folders of the server binaries besides PATH (Debian/Ubuntu keep them here).
BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
#: initdb refuses root; as root the cluster runs as this user (created if missing).
SERVER_USER = "postgres"
SUPERUSER = "postgres"
PORT = 5432  # names the socket file only: the server listens on no TCP address


def find_bindir() -> Path | None:
    """A folder holding both ``initdb`` and ``pg_ctl``: PATH first, then the usual places."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    versions = sorted(
        (Path(p) for pattern in BIN_GLOBS for p in glob.glob(pattern)),
        key=lambda p: [int(s) if s.isdigit() else 0 for s in p.parent.name.split("-")],
        reverse=True,
    )
    for folder in [*candidates, *versions]:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


class PostgresServer:
    """One cluster: ``start``, ``stop``, ``restart`` and a URL per database."""

    def __init__(self, bindir: Path, root: Path, user: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self.log = root / "server.log"
        self.user = user  # run the binaries as this user (None: as ourselves)
        self._names = itertools.count(1)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            runuser = shutil.which("runuser")
            command = (
                [runuser, "-u", self.user, "--", *command]
                if runuser
                else ["su", self.user, "-s", "/bin/sh", "-c", shlex.join(command)]
            )
        return subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, check=check, timeout=120
        )

    def init(self) -> None:
        self.socket_dir.mkdir()
        if self.user is not None:
            ids = pwd.getpwnam(self.user)
            for path in (self.root, self.socket_dir):
                os.chown(path, ids.pw_uid, ids.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "--username", SUPERUSER, "--auth", "trust",
            "--encoding", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-k {self.socket_dir} -p {PORT} -c listen_addresses='' -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """Stop (connections dropped) and start again on the same socket."""
        self.stop()
        self.start()

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={PORT}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"kline_rs_test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name}")
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def server_user() -> str | None:
    """The user to run the server as: None when not root; as root, ``postgres`` (created)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SERVER_USER],
            capture_output=True, check=True,
        )  # fmt: skip
    return SERVER_USER


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway cluster for the whole session (skips where none can start)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install psycopg[binary])")
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in PATH or "
            f"{', '.join(BIN_GLOBS)} (apt-get install postgresql)"
        )
    try:
        user = server_user()
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"running as root and no unprivileged {SERVER_USER!r} user for initdb: {e}")
    root = Path(tempfile.mkdtemp(prefix="kline-rs-pg-"))
    server = PostgresServer(bindir, root, user)
    try:
        try:
            server.init()
        except (OSError, subprocess.SubprocessError) as e:
            detail = e.stderr if isinstance(e, subprocess.CalledProcessError) else e
            pytest.skip(f"initdb ({bindir}) failed: {detail}")
        try:
            server.start()
        except (OSError, subprocess.SubprocessError):
            pytest.skip(f"PostgreSQL ({bindir}) did not start:\n{server.log_tail()}")
        yield server
    finally:
        if server.data.exists() and server.running():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database on the session's server; the server runs again afterwards."""
    yield postgres_server.create_database()
    if not postgres_server.running():
        postgres_server.start()
