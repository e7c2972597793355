"""A throwaway PostgreSQL server for the tests: `initdb` into a temporary directory, `pg_ctl start` on a
free loopback port (its unix socket in that directory too), one fresh database per test, and
everything removed at the end. conftest.py's `postgres_server` fixture runs one per test session.

    with PostgresServer.start() as server:
        url = server.new_database()           # postgresql://postgres@127.0.0.1:PORT/test_<hex>

initdb and postgres refuse to run as root: as root they run as the `postgres` user (runuser), and
the directory is handed to that user.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ui.appclient import free_port

__all__ = ["PostgresServer", "find_binaries", "postgres_required"]


def postgres_required() -> bool:
    """CI must run the PostgreSQL tests, not skip them (.ci/run sets REQUIRE_POSTGRES=1)."""
    return bool(os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"))


def find_binaries() -> Path | None:
    """The directory of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    @contextmanager
    def start(cls, bin_dir: Path, settings: Mapping[str, str] | None = None) -> Iterator[PostgresServer]:
        """`settings`: more server settings (`-c name=value`), e.g. a preloaded library to measure with."""
        root = Path(tempfile.mkdtemp(prefix="flux-pg-"))
        server = cls(bin_dir, root, free_port())
        try:
            if os.geteuid() == 0:
                shutil.chown(root, "postgres")
            server._as_owner(
                "initdb", "-D", str(root / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
            )
            options = f"-h 127.0.0.1 -p {server.port} -k {root} -F -c max_connections=200"
            options += "".join(f" -c {name}={value}" for name, value in (settings or {}).items())
            server._as_owner(
                "pg_ctl", "-D", str(root / "data"), "-o", options, "-l", str(root / "log"), "-w", "start"
            )
            yield server
        finally:
            if (root / "data" / "postmaster.pid").exists():
                server._as_owner("pg_ctl", "-D", str(root / "data"), "-m", "fast", "-w", "stop")
            shutil.rmtree(root, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        import psycopg

        name = f"test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _as_owner(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "log"
            raise RuntimeError(
                f"{program} failed: {done.stderr.strip()}\n{log.read_text() if log.exists() else ''}"
            )
