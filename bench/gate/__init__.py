"""The regression gate. rule.py: comparing runs case by case and the verdict; processes.py: a tree's
own harness in a process of its own, rounds of them; worktree.py: git; paired.py: a base revision
against the working tree, pair by pair; baselines.py: against a stored baseline; experiments.py: the
rule's false-positive and detection rates; text.py: all of it as lines to print."""
from bench.gate.baselines import find_baseline, gemm_scale, identity_key, save_baseline, stored
from bench.gate.errors import GateError, NothingToCompare
from bench.gate.experiments import AA_FILE, experiment_entry, rate_ci, rate_line, run_noise, settings, store_experiment
from bench.gate.paired import HARNESS, Outcome, paired, paired_outcome
from bench.gate.processes import Process, RunSpec, accepts, interleave, order, run_args, run_harness
from bench.gate.rule import CompareError, compare, compare_case, load_thresholds, parse_threshold, verdict
from bench.gate.worktree import resolve, worktree

__all__ = ["AA_FILE", "CompareError", "GateError", "HARNESS", "NothingToCompare", "Outcome", "Process", "RunSpec",
           "accepts", "compare", "compare_case", "experiment_entry", "find_baseline", "gemm_scale", "identity_key",
           "interleave", "load_thresholds", "order", "paired", "paired_outcome", "parse_threshold", "rate_ci",
           "rate_line", "resolve", "run_noise", "run_args", "run_harness", "save_baseline", "settings", "store_experiment", "stored",
           "verdict", "worktree"]
