"""A throwaway PostgreSQL cluster: initdb into a temp dir, served on a Unix socket only.

    from kline_rs.testing.postgres import PostgresServer, PostgresUnavailable

    with PostgresServer.throwaway() as pg:      # PostgresUnavailable says why, if it cannot
        url = pg.create_database()              # a fresh empty database
        ...
        pg.restart()                            # connections dropped, same socket

Needs the server binaries (``initdb``, ``pg_ctl``: PATH or the usual install folders) and, for
:meth:`PostgresServer.create_database`, psycopg 3. As root, the cluster runs as ``postgres``
(created if missing), since initdb refuses root.
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
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

#: Candidate folders of the server binaries besides PATH (Debian/Ubuntu keep them here).
BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
#: initdb refuses root; as root the cluster runs as this user (created if missing).
SERVER_USER = "postgres"
SUPERUSER = "postgres"
PORT = 5432  # names the socket file only: the server listens on no TCP address
#: Server settings of a test cluster: durability is not what tests check.
TEST_SETTINGS: Mapping[str, str] = {"fsync": "off"}


class PostgresUnavailable(RuntimeError):
    """No throwaway server here: binaries missing, initdb failed or the server did not start."""


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


class PostgresServer:
    """One cluster under ``root``: ``init``, ``start``, ``stop``, ``restart``, a URL per database.

    :meth:`throwaway` makes, starts and (on exit) removes one in a temp dir. ``settings`` are
    server options (``-c name=value``) on every start.
    """

    def __init__(
        self,
        bindir: Path,
        root: Path,
        user: str | None,
        settings: Mapping[str, str] = TEST_SETTINGS,
    ) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self.log = root / "server.log"
        self.user = user  # run the binaries as this user (None: as ourselves)
        self.settings = dict(settings)
        self._names = itertools.count(1)

    @classmethod
    def throwaway(cls, settings: Mapping[str, str] = TEST_SETTINGS) -> PostgresServer:
        """A new cluster in a temp dir, started; :meth:`close` (or ``with``) removes it."""
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) not found in PATH or "
                f"{', '.join(BIN_GLOBS)} (apt-get install postgresql)"
            )
        try:
            user = server_user()
        except (OSError, subprocess.CalledProcessError) as e:
            raise PostgresUnavailable(
                f"running as root and no unprivileged {SERVER_USER!r} user for initdb: {e}"
            ) from e
        server = cls(bindir, Path(tempfile.mkdtemp(prefix="kline-rs-pg-")), user, settings)
        try:
            try:
                server.init()
            except (OSError, subprocess.SubprocessError) as e:
                detail = e.stderr if isinstance(e, subprocess.CalledProcessError) else e
                raise PostgresUnavailable(f"initdb ({bindir}) failed: {detail}") from e
            try:
                server.start()
            except (OSError, subprocess.SubprocessError) as e:
                raise PostgresUnavailable(
                    f"PostgreSQL ({bindir}) did not start:\n{server.log_tail()}"
                ) from e
        except BaseException:
            server.close()
            raise
        return server

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
        options = [f"-k {self.socket_dir}", f"-p {PORT}", "-c listen_addresses=''"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", " ".join(options), "-w",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """Stop (connections dropped) and start again on the same socket."""
        self.stop()
        self.start()

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def close(self) -> None:
        """Stops the server (if running) and removes its folder."""
        try:
            if self.data.exists() and self.running():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={PORT}"

    def create_database(self, prefix: str = "kline_rs_test") -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"{prefix}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name}")
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def version(self) -> str:
        """``postgres --version`` of the binaries (e.g. ``postgres (PostgreSQL) 16.4``)."""
        got = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True
        )
        return got.stdout.strip() or "unknown"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"
