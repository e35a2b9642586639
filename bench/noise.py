"""How much noise a comparison cannot see in its own samples, and where the figure comes from: a
machine's stored A/A figures (results/baselines/aa.json, written by the gate's experiments,
bench/gate/experiments.py), looked up by the machine's noise key (bench/machine.py), else the
default. Every comparison that widens an interval (compare, gate, the report) asks here, so all of
them use the same figure and say the same thing about it."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import defaults
from bench.machine import Machine

AA_FILE = Path("results") / "baselines" / "aa.json"
CALLS_AA = "aa-calls"  # the entry of one-process A/A runs (gate --aa N --pairing calls)
MEASURE_RUNS = "python -m bench gate --aa 20"
MEASURE_CALLS = "python -m bench gate --aa 20 --pairing calls"


@dataclass(frozen=True)
class Noise:
    """What widens a comparison's interval beyond its own samples. run_sd: the sd of the log of a
    case's median between separate runs (widens comparisons of separate runs); same_run_sd: what
    the intervals of one-process comparisons miss (widens those paired by round). None: not
    widened. The sources say where each figure comes from, for the lines that print it."""

    run_sd: float | None = None
    run_source: str = ""
    same_run_sd: float | None = None
    same_run_source: str = ""


Figures = Mapping[str, Any]  # a stored figures file's content: {noise key: {"identity": ..., name: entry}}


def loads(text: str | None) -> dict[str, Any]:
    """Stored figures from a file's text ({} for None, broken or not a JSON object)."""
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def load(path: Path | str) -> dict[str, Any]:
    """The stored figures in the file at `path`; {} when absent or unreadable."""
    try:
        return loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}


def repository() -> dict[str, Any]:
    """The figures this checkout stores (results/baselines/aa.json)."""
    from bench import REPO

    return load(REPO / AA_FILE)


def entry(figures: Figures, fp: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The stored entry `name` ("aa", "detection", CALLS_AA) of the machine `fp` describes, on this
    host only; {} where there is none."""
    key = Machine.of(fp).noise_key
    machine = figures.get(key) if key else None
    found = machine.get(name) if isinstance(machine, dict) else None
    return found if isinstance(found, dict) else {}


def store(path: Path | str, fp: dict[str, Any], name: str, measured: dict[str, Any]) -> str:
    """Set the entry `name` of the machine `fp` describes to `measured` in the JSON file at `path`;
    its key. ValueError where the fingerprint names no host (a figure must say whose it is)."""
    machine = Machine.of(fp)
    if machine.noise_key is None:
        raise ValueError("the records name no host: their figures cannot be stored as a machine's")
    path = Path(path)
    data = load(path)
    data.setdefault(machine.noise_key, {})["identity"] = {**machine.identity(), "host_id": machine.host}
    data[machine.noise_key][name] = measured
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return machine.noise_key


def _date(figures: dict[str, Any]) -> str:
    return str(figures.get("measured_utc") or "?")[:10]


def run_noise(figures: Figures, fp: dict[str, Any] | None) -> tuple[float, str]:
    """(the sd of the log of a median between separate runs on the machine `fp` describes, where
    that figure comes from): its stored A/A spread where that exceeds the default, else the
    default. The A/A experiment times one-thread processes back to back, so its spread is a floor
    for runs made apart, at other thread counts: a smaller one does not lower the default."""
    aa = entry(figures, fp, "aa")
    measured = aa.get("run_sd_log")
    default = defaults.RUN_SD
    if isinstance(measured, (int, float)) and measured > default:
        return float(measured), f"this machine's A/A experiment of {_date(aa)}"
    if isinstance(measured, (int, float)) and measured:
        return default, (
            f"the default: this machine's A/A experiment of {_date(aa)} measured sd {measured:.0%} "
            "between back-to-back one-thread processes, a floor for runs made apart"
        )
    return default, f"the default: not measured on this machine ({MEASURE_RUNS} measures it)"


def calls_noise(figures: Figures, fp: dict[str, Any] | None, run: str | None = None) -> tuple[float | None, str]:
    """(what a one-process comparison's intervals miss on the machine `fp` describes, where that
    comes from): None where this machine's one-process A/A runs have not measured it, or measured
    it timing other cases than `run` (a RunSpec's description): a process-level effect depends on
    what the process runs."""
    aa = entry(figures, fp, CALLS_AA)
    if aa.get("extra_sd_log") is None:
        return None, f"not measured on this machine ({MEASURE_CALLS} measures it)"
    said = (
        f"this machine's one-process A/A experiment of {_date(aa)}: {aa.get('flagged')}/{aa.get('runs')} runs flagged"
    )
    if run is not None and aa.get("run") != run:
        return None, f"{said}, but timing other cases ({aa.get('run')}): not applied"
    return float(aa["extra_sd_log"]), said


def between_runs(figures: Figures, fp: dict[str, Any] | None) -> Noise:
    """The Noise of comparisons of separate runs measured on the machine `fp` describes."""
    sd, source = run_noise(figures, fp)
    return Noise(run_sd=sd, run_source=source)
