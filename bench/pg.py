"""A throwaway PostgreSQL for the admin-list point, or the one WIRETAPE_BENCH_DATABASE_URL names.

initdb with trust auth into a temp dir and pg_ctl on a free loopback port, as the
`postgres` user when we run as root (PostgreSQL refuses to run as root). Durability is
switched off (fsync, synchronous_commit): the point measures reads, and seeding is faster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from .harness import BenchError, free_port

PG_BIN_DIRS = ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin",
               "/usr/lib/postgresql/15/bin"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL to benchmark against; the point is reported as skipped with this."""


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in PG_BIN_DIRS:
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise PostgresUnavailable(f"PostgreSQL's {name} is not installed "
                              "(apt-get install -y postgresql), or set "
                              "WIRETAPE_BENCH_DATABASE_URL")


class Postgres:
    """Context manager yielding a SQLAlchemy URL of an empty database."""

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.dir: Path | None = None
        self.given = os.environ.get("WIRETAPE_BENCH_DATABASE_URL")
        self.created_db: tuple[str, str] | None = None  # (admin url, name)
        self.url = ""

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        full = ["taskset", "-c", str(self.cpu)]
        if os.geteuid() == 0:
            full += ["runuser", "-u", "postgres", "--"]
        full += list(cmd)
        try:
            subprocess.run(full, check=True, capture_output=True, cwd="/", timeout=timeout)
        except subprocess.CalledProcessError as e:
            err = (e.stderr or b"").decode(errors="replace").strip().splitlines()
            raise PostgresUnavailable(f"{Path(cmd[0]).name} failed: "
                                      f"{err[-1] if err else e}") from e
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PostgresUnavailable(f"{Path(cmd[0]).name} failed: {e}") from e

    def __enter__(self) -> str:
        if self.given:
            self.url = self._new_database(self.given)
            return self.url
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        self.dir = Path(tempfile.mkdtemp(prefix="wiretape-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        port = free_port()
        data = self.dir / "data"
        self._run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off "
                f"-c unix_socket_directories={self.dir} -c max_connections=100")
        self._run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(self.dir / "log"), "-w",
                  "-t", "60", "start")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        return self.url

    def _new_database(self, admin_url: str) -> str:
        from sqlalchemy import create_engine, text
        from wiretape.storage import db

        admin_url = db.check_url(admin_url)
        name = f"wt_bench_{uuid.uuid4().hex[:10]}"
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as e:
            raise BenchError(f"cannot create a database on WIRETAPE_BENCH_DATABASE_URL: {e}") \
                from e
        finally:
            engine.dispose()
        self.created_db = (admin_url, name)
        return admin_url.rsplit("/", 1)[0] + "/" + name

    def __exit__(self, *exc: object) -> None:
        if self.created_db is not None:
            from sqlalchemy import create_engine, text

            admin_url, name = self.created_db
            engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception:
                pass
            finally:
                engine.dispose()
        if self.dir is not None:
            try:
                self._run(pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
                          "stop", timeout=60)
            except PostgresUnavailable:
                pass
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)
