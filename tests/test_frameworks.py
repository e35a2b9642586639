"""The framework registry: optional frameworks are found without importing them, say how to install
them when missing, make up the default set when present, and are never imported by the core."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from bench import frameworks as backends
from bench.cli import main
from bench.cli.args import UsageError
from bench.cli.run import default_frameworks
from bench.frameworks.base import Framework

REPO = Path(__file__).resolve().parent.parent


def block(monkeypatch, *packages):
    """Make `packages` look uninstalled (importing one raises ImportError, find_spec ValueError)."""
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)


class Broken(Framework):
    """A framework that is installed (its package is json) but fails to import."""

    name, package, kernels, steps, backends = "broken", "json", "kernels.numpy_steps", {}, {}

    def load_framework(self):
        raise ImportError("no module named broken_native")


def test_the_core_imports_no_framework():
    code = (
        "import sys, bench.__main__, bench.run, bench.report, bench.gate, bench.frameworks, kernels.reference, "
        "kernels.cost; "
        "from bench import frameworks; [frameworks.spec(f) for f in frameworks.FRAMEWORKS]; "
        "print(sorted(m for m in ('tensorflow', 'torch', 'jax') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("framework", list(backends.FRAMEWORKS))
def test_a_missing_framework_says_how_to_install_it(framework, monkeypatch):
    package = backends.spec(framework).package
    block(monkeypatch, package)
    reason = f"{package} is not installed: pip install -e '.[{framework}]'"
    note = backends.spec(framework).install_note  # PyTorch's CPU build, where a plain install fetches CUDA's
    assert backends.unavailable_reason(framework) == reason + (f"; {note}" if note else "")
    with pytest.raises(backends.FrameworkUnavailable, match=r"pip install -e '\.\["):
        backends.load(framework)


def test_list_says_why_each_missing_framework_is_missing(monkeypatch, capsys):
    block(monkeypatch, *(backends.spec(name).package for name in backends.FRAMEWORKS if name != "numpy"))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "torch: not available (torch is not installed: pip install -e '.[torch]'; without an NVIDIA GPU" in out
    assert "--index-url https://download.pytorch.org/whl/cpu" in out
    assert "jax: not available (jax is not installed: pip install -e '.[jax]')" in out


def test_the_default_frameworks_are_found_and_a_broken_one_is_left_out_of_the_run(monkeypatch, tmp_path):
    """The default set is every framework installed, found without importing any; a run of that set
    leaves out (saying why) one that is installed but fails to load; asked for by name, it is an error."""
    from bench import run
    from tests.helpers import CONFIG

    block(monkeypatch, *(backends.spec(name).package for name in backends.FRAMEWORKS if name != "numpy"))
    monkeypatch.setitem(backends.FRAMEWORKS, "broken", "tests.test_frameworks:Broken")
    assert default_frameworks() == ("numpy", "broken")
    said = []

    class Heard(run.Observer):
        def left_out(self, framework, reason):
            said.append((framework, reason))

    config = dataclasses.replace(
        CONFIG,
        out=tmp_path,
        frameworks=("numpy", "broken"),
        device="cpu",
        sizes=((200, 784, 8),),
        leave_out_broken=True,
    )
    records = run.run(config, Heard())
    assert {r.framework for r in records} == {"numpy"} and said and said[0][0] == "broken"
    assert "no module named broken_native" in said[0][1]
    with pytest.raises(run.ConfigError, match="framework broken: .*no module named broken_native"):
        run.run(dataclasses.replace(config, out=tmp_path / "asked", leave_out_broken=False))
    monkeypatch.delitem(backends.FRAMEWORKS, "numpy")  # the core needs NumPy: it cannot be made missing here
    monkeypatch.delitem(backends.FRAMEWORKS, "broken")
    with pytest.raises(UsageError, match="no framework can run here: tensorflow is not installed"):
        default_frameworks()


@pytest.mark.frameworks  # every framework installed here
def test_a_framework_present_here_is_in_the_default_set():
    present = [name for name in backends.FRAMEWORKS if backends.unavailable_reason(name) is None]
    if not present:
        pytest.skip("no framework is installed")
    assert set(default_frameworks()) == set(present)


def test_a_framework_takes_its_steps_from_another_checkout_leaving_its_own(tmp_path):
    """Framework.with_kernels (the one-process gate): the other checkout's steps, with that
    checkout's own lesson.py, while this process's kernels modules stay the ones it had."""
    import shutil

    import kernels.numpy_steps

    shutil.copytree(REPO / "kernels", tmp_path / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    steps = tmp_path / "kernels" / "numpy_steps.py"
    steps.write_text(steps.read_text() + "\nWHICH = 'the other checkout'\n")
    fw = backends.load("numpy")
    other = fw.with_kernels(tmp_path)
    assert other.module.WHICH == "the other checkout" and not hasattr(fw.module, "WHICH")
    assert Path(other.module.lesson.__file__).parent == tmp_path / "kernels"  # its own lesson, not ours
    assert sys.modules["kernels.numpy_steps"] is kernels.numpy_steps is fw.module
    assert other.step("manual") is not fw.step("manual") and other.name == fw.name
