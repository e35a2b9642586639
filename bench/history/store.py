"""The history store: every run's records with their raw samples, keyed by commit (with its parent
and time), branch, machine and case, in one SQL database through SQLAlchemy Core: an SQLite file
by default (embedded, no server), or PostgreSQL for a team or a fleet of benchmark machines.

Schema version in table `schema`; MIGRATIONS bring an older database up to SCHEMA_VERSION, under a
lock, once; a database written by a newer harness is refused. Adding is idempotent: a run is known
by its run id, a result by its run and case, and a complete record replaces an interrupted one.
"""

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import REPO
from bench.machine import Machine
from bench.records import CASE_DEFAULTS, CASE_FIELDS, CaseKey, Record
from bench.text import printable

SCHEMA_VERSION = 7  # 4: a case names its environment (deps); 5: a result's ratio to its parent's steps;
# 6: a result's canary median (the machine's, bench/canary.py); 7: a case names its model and loss
DEFAULT_DB = Path("results") / "history.sqlite"


class HistoryError(ValueError):
    """The store cannot be used as asked (unreachable, corrupt, newer schema, a run without a
    commit); str() is one line."""


def _sa():
    import sqlalchemy

    return sqlalchemy


def _tables(metadata):
    """The tables of the current schema (a fresh database is made with these)."""
    sa = _sa()
    # a case field's column, by its type
    types: dict[type | str, Any] = {int: sa.Integer, bool: sa.Boolean, str: sa.String(200)}
    schema = sa.Table("schema", metadata, sa.Column("version", sa.Integer, nullable=False))
    runs = sa.Table(
        "runs",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(80), nullable=False, unique=True),
        sa.Column("commit_sha", sa.String(64), nullable=False),
        sa.Column("parent_sha", sa.String(64)),
        sa.Column("commit_time", sa.Float),  # committer time, seconds since the epoch
        sa.Column("branch", sa.String(255)),
        sa.Column("dirty", sa.Boolean, nullable=False),
        sa.Column("machine", sa.String(255), nullable=False),  # the hardware: Machine.series_key
        sa.Column("recorded_utc", sa.String(40)),
        sa.Column("source", sa.Text),  # the records file it was added from
        sa.Column("fingerprint", sa.Text, nullable=False),  # JSON
        sa.Index("runs_commit", "commit_sha"),
        sa.Index("runs_machine", "machine"),
    )
    results = sa.Table(
        "results",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        *(sa.Column(f.name, types[f.type], nullable=False) for f in dataclasses.fields(CaseKey)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("interrupted", sa.Boolean, nullable=False),
        sa.Column("median_s", sa.Float),
        sa.Column("gemm_gflops", sa.Float),
        *_parent_columns(sa),
        _canary_column(sa),
        sa.Column("record", sa.Text, nullable=False),  # the whole record as JSON, raw samples included
        sa.UniqueConstraint("run", *CASE_FIELDS, name="results_run_case"),
    )
    return schema, runs, results


def _parent_columns(sa):
    """The case against the parent commit's steps timed in the same process (a one-process gate's
    base side, `history add --paired-base`): the commit they were, the ratio and its 95% interval.
    Null where the run had no such pairing."""
    return (
        sa.Column("parent_sha", sa.String(64)),
        sa.Column("parent_ratio", sa.Float),
        sa.Column("parent_lo", sa.Float),
        sa.Column("parent_hi", sa.Float),
    )


def _add_parent_columns(conn, tables):
    """Schema 5 (issue 18): the nullable columns of _parent_columns, added in place."""
    sa = _sa()
    have = {c["name"] for c in sa.inspect(conn).get_columns("results")}
    for column in _parent_columns(sa):
        if column.name not in have:
            conn.execute(sa.text(f"ALTER TABLE results ADD COLUMN {column.name} {column.type.compile(conn.dialect)}"))


def _canary_column(sa):
    """The median time of the machine's canary over the rounds the case was timed in (bench/canary.py):
    what the machine was doing meanwhile. Null for a record made before the canary."""
    return sa.Column("canary_s", sa.Float)


def _add_canary_column(conn, tables):
    """Schema 6 (issue 38): the nullable column of _canary_column, added in place; older rows keep null."""
    sa = _sa()
    if "canary_s" not in {c["name"] for c in sa.inspect(conn).get_columns("results")}:
        ddl = _canary_column(sa).type.compile(conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE results ADD COLUMN canary_s {ddl}"))


def _create(conn, tables):
    for table in tables:
        table.create(conn, checkfirst=True)


def _case_columns(conn, tables):
    """Bring the results table to the case key of this version: each case field it lacks is added
    with the value CaseKey gives an old record (schema 2, issue 12: tf32 false, cache warm; schema 3,
    issue 13: engine "", replicas 1; schema 4, issue 20: deps "", the harness's own environment;
    schema 7, issue 40: model "lesson", loss_fn "mse"),
    and the unique key of a result is made of every field.
    PostgreSQL alters the table in place; SQLite, which cannot alter a constraint, rebuilds it."""
    sa = _sa()
    _, _, results = tables
    have = {c["name"] for c in sa.inspect(conn).get_columns("results")}
    missing = [f for f in CASE_FIELDS if f not in have]
    if not missing:
        return
    defaults = CASE_DEFAULTS
    literal = {f: str(results.c[f].type.literal_processor(conn.dialect)(defaults[f])) for f in missing}
    if conn.dialect.name == "postgresql":
        for f in missing:
            ddl = results.c[f].type.compile(conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE results ADD COLUMN {f} {ddl} NOT NULL DEFAULT {literal[f]}"))
        conn.execute(sa.text("ALTER TABLE results DROP CONSTRAINT results_run_case"))
        conn.execute(
            sa.text(f"ALTER TABLE results ADD CONSTRAINT results_run_case UNIQUE (run, {', '.join(CASE_FIELDS)})")
        )
        return
    kept = ", ".join(c.name for c in results.columns if c.name in have)
    conn.execute(sa.text("ALTER TABLE results RENAME TO results_old"))
    results.create(conn)
    conn.execute(
        sa.text(
            f"INSERT INTO results ({kept}, {', '.join(missing)}) "
            f"SELECT {kept}, {', '.join(literal[f] for f in missing)} FROM results_old"
        )
    )
    conn.execute(sa.text("DROP TABLE results_old"))


# version -> what brings a database at version - 1 to it (a new database is made at SCHEMA_VERSION)
MIGRATIONS = {
    2: _case_columns,
    3: _case_columns,
    4: _case_columns,
    5: _add_parent_columns,
    6: _add_canary_column,
    7: _case_columns,
}


def _check_relative(path: Path, url: str) -> None:
    """HistoryError for a relative SQLite path that lands inside this repository outside results/:
    what `sqlite:///home/me/db` (three slashes, meant absolute) gives. An absolute path takes four."""
    if path.is_absolute():
        return
    where = (Path.cwd() / path).resolve()
    repo = REPO.resolve()
    if where.is_relative_to(repo) and not where.is_relative_to(repo / "results"):
        raise HistoryError(
            f"{printable(url)[:200]}: a relative path, {where} inside the repository; an absolute path "
            f"takes four slashes (sqlite:////{str(path).lstrip('/')}), a relative one belongs under "
            "results/ (the default: sqlite:///results/history.sqlite)"
        )


class Store:
    """A history database. `Store(url)` connects to an existing one and migrates it; `Store(url,
    create=True)` makes it first where there is none (`history init`). HistoryError for any
    failure: a database that is not there is one, so a typo in a URL never reads as an empty
    history that passes."""

    def __init__(self, url: str | None = None, create: bool = False) -> None:
        sa = _sa()
        self.url = str(url or f"sqlite:///{DEFAULT_DB}")
        self.create = create
        self.metadata = sa.MetaData()
        self.tables = _tables(self.metadata)
        self.schema, self.runs, self.results = self.tables
        try:
            self.engine = self._engine(sa)
            self._migrate()
        except HistoryError:
            raise
        except Exception as e:
            raise HistoryError(f"{self.shown}: {_why(e)}") from None

    @property
    def shown(self) -> str:
        """The URL without a password."""
        try:
            return _sa().engine.make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return printable(self.url)[:200]

    def _engine(self, sa):
        try:
            url = sa.engine.make_url(self.url)
        except Exception:
            raise HistoryError(
                f"{printable(self.url)[:200]}: not a database URL (sqlite:///FILE or postgresql://USER@HOST/DB)"
            ) from None
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                path = Path(url.database)
                if path.is_dir():
                    raise HistoryError(f"{path}: is a folder, not an SQLite database")
                _check_relative(path, self.url)
                if not path.exists() and not self.create:
                    raise HistoryError(
                        f"{self.shown}: no history database at {path.resolve()} "
                        f"(`python -m bench history init --db {self.shown}` creates one)"
                    )
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": 60})

            @sa.event.listens_for(engine, "connect")
            def _connect(dbapi_connection, _):
                dbapi_connection.isolation_level = None  # SQLAlchemy, not pysqlite, begins transactions
                dbapi_connection.execute("PRAGMA foreign_keys=ON")

            @sa.event.listens_for(engine, "begin")
            def _begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # writers queue (busy timeout) instead of deadlocking

            return engine
        if url.get_backend_name() == "postgresql":
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            try:
                return sa.create_engine(url, connect_args={"connect_timeout": 10}, pool_pre_ping=True)
            except ModuleNotFoundError:
                raise HistoryError(f"{self.shown}: PostgreSQL needs psycopg (pip install 'psycopg[binary]')") from None
        raise HistoryError(f"{self.shown}: only SQLite and PostgreSQL are supported")

    def _migrate(self):
        sa = _sa()
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(4274211)"))  # one migrator at a time
            inspector = sa.inspect(conn)
            version = 0
            if inspector.has_table("schema"):
                row = conn.execute(sa.select(self.schema.c.version)).first()
                version = row.version if row else 0
            elif inspector.get_table_names():
                raise HistoryError(f"{self.shown}: holds other tables, not a backprop-bench history")
            if version == 0 and not self.create:
                raise HistoryError(
                    f"{self.shown}: holds no backprop-bench history "
                    f"(`python -m bench history init --db {self.shown}` creates one)"
                )
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.shown}: written by a newer backprop-bench (schema {version}; this one "
                    f"reads up to {SCHEMA_VERSION}); upgrade it"
                )
            if version == 0:
                _create(conn, self.tables)
            else:
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[v](conn, self.tables)
            if version < SCHEMA_VERSION:
                conn.execute(self.schema.delete())
                conn.execute(self.schema.insert().values(version=SCHEMA_VERSION))

    # ------------------------------------------------------------ writing

    def _insert(self, conn, table):
        module = {"sqlite": "sqlalchemy.dialects.sqlite", "postgresql": "sqlalchemy.dialects.postgresql"}[
            conn.dialect.name
        ]
        return __import__(module, fromlist=["insert"]).insert(table)

    def add(
        self,
        records: Sequence[Record],
        commit: dict[str, Any],
        source: Path | str | None = None,
        against_parent: Mapping[CaseKey, tuple[str, float, float, float]] | None = None,
    ) -> int:
        """Add the records of one run (one run id) and its commit {sha, parent, time, branch, dirty};
        returns the results newly added or replaced. Idempotent. against_parent: {case: (the
        commit whose steps it was timed against in the same process, ratio, lo, hi)}."""
        sa = _sa()
        first = records[0]
        try:
            with self.engine.begin() as conn:
                insert = self._insert(conn, self.runs)
                conn.execute(
                    insert.values(
                        run_id=first.run_id,
                        commit_sha=commit["sha"],
                        parent_sha=commit.get("parent"),
                        commit_time=commit.get("time"),
                        branch=commit.get("branch"),
                        dirty=bool(commit.get("dirty")),
                        machine=Machine.of(first.fingerprint).series_key,
                        recorded_utc=(first.fingerprint or {}).get("time_utc"),
                        source=str(source) if source else None,
                        fingerprint=json.dumps(first.fingerprint or {}, default=str),
                    ).on_conflict_do_nothing(index_elements=["run_id"])
                )
                run = conn.execute(sa.select(self.runs.c.id).where(self.runs.c.run_id == first.run_id)).scalar_one()
                added = 0
                for rec in records:
                    row = self._row(rec, run, (against_parent or {}).get(rec.case))
                    stmt = self._insert(conn, self.results).values(**row)
                    # a complete record replaces an interrupted one (a resumed run); otherwise nothing
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["run", *CASE_FIELDS],
                        set_={k: stmt.excluded[k] for k in row if k != "run"},
                        where=self.results.c.interrupted & ~stmt.excluded.interrupted,
                    )
                    added += len(conn.execute(stmt.returning(self.results.c.id)).all())  # 0: already there
                return added
        except HistoryError:
            raise
        except Exception as e:
            raise HistoryError(f"{self.shown}: {_why(e)}") from None

    @staticmethod
    def _row(rec, run, parent=None):
        s = rec.summary
        sha, ratio, lo, hi = parent if parent and all(math.isfinite(v) and v > 0 for v in parent[1:]) else (None,) * 4
        return {
            "run": run,
            **rec.case.asdict(),
            "status": rec.status,
            "interrupted": rec.stop_reason == "interrupted",
            "median_s": s.median_s if math.isfinite(s.median_s) else None,
            "gemm_gflops": s.gemm_gflops if math.isfinite(s.gemm_gflops) else None,
            "parent_sha": sha,
            "parent_ratio": ratio,
            "parent_lo": lo,
            "parent_hi": hi,
            "canary_s": s.canary_s if math.isfinite(s.canary_s) else None,
            "record": rec.to_json(),
        }

    # ------------------------------------------------------------ reading

    def points(self, case_pattern: str | None = None, include_dirty: bool = False) -> list[dict[str, Any]]:
        """Every timed result joined with its run: dicts with the case fields, machine, commit,
        parent, commit_time, branch, dirty, run_id, median_s, gemm_gflops, parent_sha/ratio/lo/hi
        (against the parent's steps in the same process, or None), canary_s (the machine's canary
        median, or None) and the record's samples, ordered by commit time then recording time."""
        import fnmatch

        sa = _sa()
        r, x = self.runs, self.results
        query = (
            sa.select(
                r.c.run_id,
                r.c.commit_sha,
                r.c.parent_sha,
                r.c.commit_time,
                r.c.branch,
                r.c.dirty,
                r.c.machine,
                r.c.recorded_utc,
                r.c.source,
                *(x.c[f] for f in CASE_FIELDS),
                x.c.median_s,
                x.c.gemm_gflops,
                *(x.c[c] for c in ("parent_sha", "parent_ratio", "parent_lo", "parent_hi")),
                x.c.canary_s,
                x.c.record,
            )
            .join(x, x.c.run == r.c.id)
            .where(x.c.status == "ok")
            .order_by(r.c.commit_time, r.c.recorded_utc, r.c.id)
        )
        if not include_dirty:
            query = query.where(r.c.dirty == sa.false())
        try:
            with self.engine.connect() as conn:
                rows = [dict(row._mapping) for row in conn.execute(query)]
        except Exception as e:
            raise HistoryError(f"{self.shown}: {_why(e)}") from None
        out = []
        for row in rows:
            key = CaseKey(**{f: row[f] for f in CASE_FIELDS})
            name, label = key.name, key.label
            if (
                case_pattern
                and not fnmatch.fnmatchcase(label, case_pattern)
                and not fnmatch.fnmatchcase(name, case_pattern)
            ):
                continue
            record = Record.from_dict(json.loads(row.pop("record")))
            out.append(
                {
                    **row,
                    "case": label,
                    "samples_s": record.samples_s,
                    "counters": record.counters,
                    "instructions": record.instructions,
                }
            )
        return out

    def run_records(self, prefix: str) -> dict[str, list[Record]]:
        """{run id: its records} of the runs whose id starts with `prefix` (a bisection's step: its
        sides' runs share one)."""
        sa = _sa()
        r, x = self.runs, self.results
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = sa.select(r.c.run_id, x.c.record).join(x, x.c.run == r.c.id).where(r.c.run_id.like(like, escape="\\"))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(x.c.id)).all()
        except Exception as e:
            raise HistoryError(f"{self.shown}: {_why(e)}") from None
        out: dict[str, list[Record]] = {}
        for run_id, record in rows:
            out.setdefault(run_id, []).append(Record.from_dict(json.loads(record)))
        return out

    def counts(self) -> tuple[int, int]:
        sa = _sa()
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.select(sa.func.count()).select_from(self.runs)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(self.results)).scalar_one(),
            )


def _why(e):
    """A database error as one line, without SQLAlchemy's background links and statement echo."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if "file is not a database" in text:
        text = "not an SQLite database (a corrupt or foreign file)"
    return printable(f"{type(orig).__name__}: {text}")[:300]
