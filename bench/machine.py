"""Which machine measured a run: the ONE identity, read from a run's fingerprint, and the keys other
parts of the harness file things under. Each key is a projection of the same identity:

- `baseline_key`: the hardware and the frameworks' versions, what a stored baseline must match;
- `series_key`: the hardware and the thread settings, what a history series is kept per (a
  framework upgrade is a change within a machine's history, not another machine);
- `noise_key`: the baseline key on this host only, under which stored noise figures (A/A
  experiments) apply: another host of the same CPU model is another machine for that, since the
  processes beside it, its clocks and its noise are its own."""

import re
from dataclasses import dataclass, field
from typing import Any

# A fingerprint's keys that make up the identity, as `differences` names them.
IDENTITY_KEYS = ("cpu_model", "machine", "gpu_names", "framework_versions")


@dataclass(frozen=True)
class Machine:
    arch: str | None = None
    cpu_model: str | None = None
    gpus: tuple[str, ...] = ()
    host: str | None = None  # fingerprint's host_id: one installation of an OS
    frameworks: tuple[tuple[str, str | None], ...] = ()  # (name, version), sorted by name
    threads: tuple[str, ...] = ()  # the thread counts the run's variables set
    fingerprint: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, fp: dict[str, Any] | None) -> "Machine":
        """The Machine a fingerprint (bench/fingerprint.py) describes; unknown parts None or empty (older
        records lack some)."""
        fp = fp if isinstance(fp, dict) else {}
        fws = fp.get("frameworks")
        fws = fws if isinstance(fws, dict) else {}
        variables = fp.get("env")
        variables = variables if isinstance(variables, dict) else {}
        return cls(
            arch=fp.get("machine"),
            cpu_model=fp.get("cpu_model"),
            gpus=tuple(str(g.get("name")) for g in fp.get("gpus") or [] if isinstance(g, dict)),
            host=fp.get("host_id"),
            frameworks=tuple(
                sorted((str(k), v.get("version") if isinstance(v, dict) else None) for k, v in fws.items())
            ),
            threads=tuple(sorted({str(variables[v]) for v in _thread_variables() if variables.get(v)})),
            fingerprint=fp,
        )

    def identity(self) -> dict[str, Any]:
        """What must match for two runs' times to be comparable, as a plain dict (IDENTITY_KEYS)."""
        return {
            "cpu_model": self.cpu_model,
            "machine": self.arch,
            "gpu_names": list(self.gpus),
            "framework_versions": dict(self.frameworks),
        }

    def hardware(self) -> tuple[str | None, str | None, tuple[str, ...]]:
        return (self.cpu_model, self.arch, self.gpus)

    @property
    def baseline_key(self) -> str:
        """A readable, file-name-safe key, e.g. x86_64-some-cpu-model-nogpu-tensorflow-2.21.0."""
        parts = [
            self.arch or "unknown",
            self.cpu_model or "unknown-cpu",
            "+".join(self.gpus) or "nogpu",
            *(f"{k}-{v}" for k, v in self.frameworks),
        ]
        return re.sub(r"[^a-z0-9._+]+", "-", "-".join(parts).lower().replace("(r)", "").replace("(tm)", "")).strip("-")

    @property
    def series_key(self) -> str:
        """The hardware and thread settings, e.g. 'x86_64 | Some CPU | no GPU | 1 thread(s)'."""
        return " | ".join(
            [self.arch or "unknown", self.cpu_model or "unknown CPU", "+".join(g for g in self.gpus if g) or "no GPU"]
            + ([f"{'/'.join(self.threads)} thread(s)"] if self.threads else [])
        )[:255]

    @property
    def noise_key(self) -> str | None:
        """The baseline key on this host; None where the fingerprint names no host (records from
        before host ids): no stored figure can then be said to be this machine's."""
        return f"{self.baseline_key}@{self.host}" if self.host else None

    def with_frameworks(self, names: set[str] | frozenset[str]) -> "Machine":
        """This identity with only the versions of `names` (a run that also loaded another framework
        is not another machine for a case of one framework)."""
        return Machine(
            self.arch,
            self.cpu_model,
            self.gpus,
            self.host,
            tuple((k, v) for k, v in self.frameworks if k in names),
            self.threads,
            self.fingerprint,
        )

    def differences(self, other: "Machine") -> list[str]:
        """One line per identity difference, e.g. "cpu_model: 'CPU A' vs 'CPU B'"; the
        versions of frameworks only one side loaded are no difference."""
        shared = {k for k, _ in self.frameworks} & {k for k, _ in other.frameworks}
        a, b = self.with_frameworks(shared).identity(), other.with_frameworks(shared).identity()
        lines: list[str] = []
        for key in IDENTITY_KEYS:
            if key == "framework_versions":
                lines += [
                    f"{key}.{k}: {a[key].get(k)!r} vs {b[key].get(k)!r}"
                    for k in sorted(set(a[key]) | set(b[key]))
                    if a[key].get(k) != b[key].get(k)
                ]
            elif a[key] != b[key]:
                lines.append(f"{key}: {a[key]!r} vs {b[key]!r}")
        return lines


def _thread_variables() -> tuple[str, ...]:
    """Every framework's thread variables (their classes say which), read without importing one."""
    from bench import frameworks

    return tuple(frameworks.thread_env(1))
