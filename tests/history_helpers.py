"""Synthetic histories for the history tests and benchmarks: a throwaway git repository of N commits
and, for each commit, a run of records whose medians follow a given series per case."""

import json
import subprocess

import numpy as np

from bench.records import Record

ENV = {
    "cpu_model": "Synthetic CPU",
    "machine": "x86_64",
    "gpus": [],
    "hostname": "synthetic",
    "frameworks": {"numpy": {"version": "2.0"}},
    "git_dirty": False,
    "git_branch": "main",
    "time_utc": "2026-11-27T00:00:00+00:00",
}


def git_repo(path, commits):
    """A git repository at `path` with `commits` empty commits; their shas, oldest first."""
    path.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(["git", "-C", str(path), *a], check=True, capture_output=True, text=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    script = "; ".join(
        f"GIT_COMMITTER_DATE='{1_700_000_000 + 3600 * i} +0000' git -c user.name=t -c user.email=t@t "
        f"commit -q --allow-empty -m 'commit {i}'"
        for i in range(commits)
    )
    subprocess.run(["bash", "-c", f"cd {path} && {script}"], check=True)
    return run("rev-list", "--reverse", "HEAD").stdout.split()


def run_records(sha, index, medians, samples=12, seed=0, gemm=100.0, canary=None):
    """One run at commit `sha`: a record per case whose samples have the given median (seconds);
    with `canary`, the machine's canary took that long in every round."""
    rng = np.random.default_rng(seed + index)
    out = []
    for c, median in enumerate(medians):
        times = tuple(float(t) for t in median * rng.lognormal(0, 0.01, samples) / np.exp(0))
        times = tuple(t * median / float(np.median(times)) for t in times)  # exactly this median
        out.append(
            Record(
                framework="numpy",
                step="manual",
                backend="eager",
                device="cpu",
                n=1000 * (c + 1),
                m=784,
                nh=50,
                dtype="float32",
                status="ok",
                run_id=f"synthetic-{index:04d}",
                samples_s=times,
                rounds=tuple(range(samples)),
                stop_reason="ci",
                ceilings={"gemm_gflops": gemm},
                canary_s=(canary,) * samples if canary else (),
                fingerprint={**ENV, "git_commit": sha},
            )
        )
    return out


def series(commits, cases, sigma=0.03, step_at=None, creep_at=None, seed=0):
    """(commits x cases) medians in seconds: noise of `sigma` (log), a +10% step at commit step_at
    and ten commits of +2% creep from creep_at, in every case."""
    rng = np.random.default_rng(seed)
    logs = rng.normal(0, sigma, (commits, cases)) + np.log(0.01)
    k = np.arange(commits)[:, None]
    if step_at is not None:
        logs += (k >= step_at) * np.log(1.10)
    if creep_at is not None:
        logs += np.clip(k - creep_at + 1, 0, 10) * np.log(1.02)
    return np.exp(logs)


def make_v1_store(url, recs, commit):
    """A history database as schema 1 left it (before TF32 and the cache state were part of a case),
    holding `recs` of one run: what migration 2 starts from."""
    import sqlalchemy as sa

    from bench.machine import Machine

    fields = ("framework", "step", "backend", "device", "n", "m", "nh", "dtype")
    md = sa.MetaData()
    schema = sa.Table("schema", md, sa.Column("version", sa.Integer, nullable=False))
    runs = sa.Table(
        "runs",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(80), nullable=False, unique=True),
        sa.Column("commit_sha", sa.String(64), nullable=False),
        sa.Column("parent_sha", sa.String(64)),
        sa.Column("commit_time", sa.Float),
        sa.Column("branch", sa.String(255)),
        sa.Column("dirty", sa.Boolean, nullable=False),
        sa.Column("machine", sa.String(255), nullable=False),
        sa.Column("recorded_utc", sa.String(40)),
        sa.Column("source", sa.Text),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Index("runs_commit", "commit_sha"),
        sa.Index("runs_machine", "machine"),
    )
    results = sa.Table(
        "results",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        *(sa.Column(f, sa.Integer if f in ("n", "m", "nh") else sa.String(200), nullable=False) for f in fields),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("interrupted", sa.Boolean, nullable=False),
        sa.Column("median_s", sa.Float),
        sa.Column("gemm_gflops", sa.Float),
        sa.Column("record", sa.Text, nullable=False),
        sa.UniqueConstraint("run", *fields, name="results_run_case"),
    )
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        md.create_all(conn)
        conn.execute(schema.insert().values(version=1))
        run = conn.execute(
            runs.insert().values(
                run_id=recs[0].run_id,
                commit_sha=commit["sha"],
                parent_sha=commit["parent"],
                commit_time=commit["time"],
                branch=commit["branch"],
                dirty=False,
                machine=Machine.of(recs[0].fingerprint).series_key,
                fingerprint="{}",
            )
        ).inserted_primary_key[0]
        for r in recs:
            old = {
                k: v
                for k, v in json.loads(r.to_json()).items()
                if k not in ("cache", "timer", "host_samples_s", "telemetry")
            }
            conn.execute(
                results.insert().values(
                    run=run,
                    **{f: getattr(r, f) for f in fields},
                    status=r.status,
                    interrupted=False,
                    median_s=r.summary.median_s,
                    gemm_gflops=None,
                    record=json.dumps(old),
                )
            )
    engine.dispose()
