"""A private PostgreSQL cluster for the tests: Debian's ``initdb`` and ``pg_ctl``.

Theory of operation
-------------------
:class:`PgCluster` makes a cluster in a fresh directory under /tmp with the
binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<ver>/bin``,
the newest version there), on a free port, listening on a Unix socket in that
directory only (no TCP: nothing else on the machine can reach it), with
``trust`` authentication for its one user ``postgres``. It starts, stops
(``pg_ctl stop -m fast``, as an outage) and starts again on demand.

``initdb`` refuses to run as root: as root every command runs as the system
user ``postgres`` (``runuser -u postgres --``; the package creates that
user), which owns the directory. The tests connect over the socket as the
database user ``postgres`` whatever they run as.

Missing binaries (or no ``postgres`` user under root) fail the test, never
skip it: scripts/setup.sh installs the ``postgresql`` package.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port

MISSING = (
    "PostgreSQL is not installed (Debian package 'postgresql': initdb and pg_ctl under "
    "/usr/lib/postgresql/*/bin). The call-record tests need it: run scripts/setup.sh."
)


def pg_bin() -> Path:
    """The bin directory of the newest PostgreSQL installed (fails the test if none)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    found = [p for p in found if (Path(p) / "initdb").exists() and (Path(p) / "pg_ctl").exists()]
    if not found:
        pytest.fail(MISSING, pytrace=False)
    return Path(found[-1])


class PgCluster:
    """A private cluster in ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.bin = pg_bin()
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self.port = free_port()
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(MISSING + " (no system user 'postgres')", pytrace=False)
            os.chown(directory, user.pw_uid, user.pw_gid)
            self.as_postgres = [
                shutil.which("runuser") or "/usr/sbin/runuser",
                "-u",
                "postgres",
                "--",
            ]
        directory.chmod(0o755)  # the socket in it is for the tests to reach
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )

    @property
    def dsn(self) -> str:
        return f"host={self.directory} port={self.port} user=postgres dbname=postgres"

    def start(self) -> None:
        options = f"-k {self.directory} -p {self.port} -c listen_addresses='' -c fsync=off"
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.log), "-o", options)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: connections are cut, the server is gone."""
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def running(self) -> bool:
        status = subprocess.run(
            [*self.as_postgres, str(self.bin / "pg_ctl"), "status", "-D", str(self.data)],
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_postgres, str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise AssertionError(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}"
                f"{done.stderr}\n{log}"
            )


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PgCluster]:
    """A started cluster, stopped and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="huntgroup-pg-", dir="/tmp"))
    try:
        cluster = PgCluster(directory)
        cluster.start()
        try:
            yield cluster
        finally:
            if cluster.running():
                cluster.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster for the tests of one module."""
    with postgres_cluster() as cluster:
        yield cluster
