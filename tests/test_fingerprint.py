"""Tests for bench/fingerprint.py: a run's fingerprint and how two fingerprints are compared."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import REPO, fingerprint
from bench.machine import Machine

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_KEYS = {
    "hostname",
    "os",
    "kernel",
    "python",
    "python_impl",
    "machine",
    "cpu_model",
    "cpu_count_logical",
    "cpu_count_physical",
    "cpu_affinity",
    "cpu_flags_simd",
    "cpu_freq_mhz",
    "load_avg",
    "memory_total_bytes",
    "memory_available_bytes",
    "gpus",
    "env",
    "git_commit",
    "git_dirty",
    "git_branch",
    "numpy",
    "packages",
    "frameworks",
    "data_source",
    "seeds",
    "time_utc",
}


def _fake_nvidia_smi(directory: Path, output: str) -> None:
    """An executable `nvidia-smi` in directory that prints output."""
    script = directory / "nvidia-smi"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + output + "EOF\n")
    script.chmod(0o755)


def test_fingerprint_is_json_and_has_keys():
    fp = fingerprint.collect({"tensorflow": {"version": "2.21.0"}}, data_source="synthetic", seeds={"numpy": 0})
    assert json.loads(json.dumps(fp)) == fp
    assert EXPECTED_KEYS <= set(fp)
    assert set(fingerprint.ENV_VARS) == set(fp["env"])
    assert set(fingerprint.PACKAGES) == set(fp["packages"])
    assert fp["frameworks"] == {"tensorflow": {"version": "2.21.0"}}
    assert fp["data_source"] == "synthetic" and fp["seeds"] == {"numpy": 0}
    assert set(fp["cpu_flags_simd"]) <= set(fingerprint.SIMD_FLAGS)
    assert fp["cpu_count_logical"] >= 1


def test_defaults_give_empty_frameworks():
    fp = fingerprint.collect()
    assert fp["frameworks"] == {} and fp["data_source"] is None and fp["seeds"] is None


def test_env_var_is_recorded(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    fp = fingerprint.collect()
    assert fp["env"]["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert fp["env"]["OMP_NUM_THREADS"] is None


def test_git_fields_none_outside_a_checkout(tmp_path):
    """A folder that is no checkout of its own (a copied tree) reports no git facts."""
    (tmp_path / "bench").mkdir()
    fp = fingerprint.git_info(tmp_path)
    assert fp["git_commit"] is None and fp["git_dirty"] is None and fp["git_branch"] is None


def test_git_fields_in_this_checkout():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("no git or no .git in the repository root")
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "-q", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        pytest.skip("the repository has no commit yet (HEAD does not exist)")
    fp = fingerprint.collect()
    assert fp["git_commit"] == head.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", fp["git_commit"])
    assert isinstance(fp["git_dirty"], bool)
    assert fp["git_branch"] is None or isinstance(fp["git_branch"], str)


def test_no_nvidia_smi_gives_no_gpus(monkeypatch):
    monkeypatch.setattr(fingerprint.shutil, "which", lambda name, *a, **k: None)
    assert fingerprint.collect()["gpus"] == []


def test_failing_nvidia_smi_gives_no_gpus(monkeypatch, tmp_path):
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert fingerprint.collect()["gpus"] == []


def test_fake_nvidia_smi_is_parsed(monkeypatch, tmp_path):
    _fake_nvidia_smi(
        tmp_path,
        textwrap.dedent("""\
        NVIDIA H100 80GB HBM3, 550.54.15, 81559, 81000, 1980, 1980, 700.00, 34, Disabled
        NVIDIA GeForce RTX 3090, 535.104.05, 24576, 20000, 210, 2100, 350.50, [N/A], [N/A]
        """),
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    gpus = fingerprint.collect()["gpus"]
    assert gpus[0] == {
        "name": "NVIDIA H100 80GB HBM3",
        "driver_version": "550.54.15",
        "memory_total_bytes": 81559 * 1024 * 1024,
        "memory_free_bytes": 81000 * 1024 * 1024,
        "clock_sm_mhz": 1980,
        "clock_max_sm_mhz": 1980,
        "power_limit_w": 700,
        "temperature_c": 34,
        "mig_mode": "Disabled",
    }
    assert gpus[1]["power_limit_w"] == 350.5
    assert gpus[1]["temperature_c"] is None and gpus[1]["mig_mode"] is None
    assert len(gpus) == 2
    assert Machine.of({"gpus": gpus}).identity()["gpu_names"] == ["NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 3090"]


def test_works_without_psutil(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # makes `import psutil` raise ImportError
    fp = fingerprint.collect()
    json.dumps(fp)
    assert fp["cpu_freq_mhz"] is None
    assert fp["cpu_count_logical"] == os.cpu_count()
    if Path("/proc/meminfo").exists():
        assert fp["memory_total_bytes"] > 0 and fp["memory_available_bytes"] > 0


def test_package_lookup_imports_no_framework():
    code = textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from bench import fingerprint
        fp = fingerprint.collect()
        loaded = [m for m in ("tensorflow", "torch", "jax", "keras", "pandas", "matplotlib") if m in sys.modules]
        assert not loaded, loaded
        print(fp["packages"])
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _sample() -> dict:
    fp = fingerprint.collect({"tensorflow": {"version": "2.21.0", "cuda": None}}, data_source="synthetic")
    fp["cpu_model"] = "AMD EPYC"
    fp["env"] = dict.fromkeys(fp["env"])  # as if no variable were set, whatever this process has
    return fp


def test_identical_fingerprints_have_no_differences():
    fp = _sample()
    assert fingerprint.differences(fp, copy.deepcopy(fp)) == []


def test_differences_reports_cpu_model_framework_version_and_env():
    a = _sample()
    b = copy.deepcopy(a)
    b["cpu_model"] = "Intel Xeon"
    b["frameworks"]["tensorflow"]["version"] = "2.20.0"
    b["env"]["TF_ENABLE_ONEDNN_OPTS"] = "0"
    lines = fingerprint.differences(a, b)
    assert "cpu_model: 'AMD EPYC' vs 'Intel Xeon'" in lines
    assert "framework_versions.tensorflow: '2.21.0' vs '2.20.0'" in lines
    assert "env.TF_ENABLE_ONEDNN_OPTS: None vs '0'" in lines
    assert len(lines) == 3
    # With explicit keys, any nested part of the fingerprint can be compared.
    assert fingerprint.differences(a, b, keys=["frameworks"]) == ["frameworks.tensorflow.version: '2.21.0' vs '2.20.0'"]


def test_identity_and_differences_tolerate_missing_keys():
    old = {"cpu_model": "AMD EPYC"}  # an older record with few keys
    assert Machine.of(old).identity() == {
        "cpu_model": "AMD EPYC",
        "machine": None,
        "gpu_names": [],
        "framework_versions": {},
    }
    assert set(Machine.of(old).identity()) == set(fingerprint.IDENTITY_KEYS)
    assert fingerprint.differences(old, {}) == ["cpu_model: 'AMD EPYC' vs None"]
    new = _sample()
    lines = fingerprint.differences(old, new)
    assert any(line.startswith("machine: None vs") for line in lines)
    assert not any(line.startswith("env.") for line in lines)  # unset env vars match a missing env


def test_git_fields_in_a_fresh_repository(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "module.py").write_text("x = 1\n")

    def git(*args):
        return subprocess.run(
            [
                "git",
                "-C",
                str(tmp_path),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q", "-b", "trunk")
    git("add", "bench/module.py")
    git("commit", "-q", "-m", "init")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.json").write_text("{}")  # untracked results do not make it dirty
    fp = fingerprint.git_info(tmp_path)
    assert fp["git_commit"] == git("rev-parse", "HEAD")
    assert fp["git_branch"] == "trunk"
    assert fp["git_dirty"] is False
    (tmp_path / "notes.txt").write_text("x")  # any other untracked file does
    assert fingerprint.git_info(tmp_path)["git_dirty"] is True
    assert fingerprint.git_info(tmp_path / "bench") == {"git_commit": None, "git_dirty": None, "git_branch": None}


def test_exit_now_flushes_the_output_and_skips_the_finalizers():
    """A worker that has answered everything ends with its buffered output out and its status, and
    without the interpreter's exit handlers (where the frameworks' seconds-long finalizers run)."""
    code = (
        "import atexit, sys\n"
        "from bench import process\n"
        "atexit.register(lambda: print('finalizer ran'))\n"
        "sys.stdout.write('answered'); sys.stderr.write('said')\n"
        "process.exit_now(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "answered", "said")
