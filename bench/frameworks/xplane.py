"""The XPlane trace files that TensorFlow's and JAX's profilers write (TensorBoard's and XProf's
format: plugins/profile/<run>/<host>.xplane.pb under the trace folder), read as a flat list of
events; each framework's profile() says which events are its ops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Event:
    plane: str  # "/host:CPU", "/device:GPU:0", ...
    line: str  # a thread on the host ("python", "tf_Compute/..."), a stream on a device
    name: str
    start_s: float
    duration_s: float


def trace_file(trace_dir: Path) -> Path:
    """The newest .xplane.pb under `trace_dir`; FileNotFoundError when the profiler wrote none."""
    found = sorted(trace_dir.glob("plugins/profile/*/*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"{trace_dir}: the profiler wrote no .xplane.pb")
    return found[-1]


def events_from_protobuf(path: Path, xplane_pb2: Any) -> Iterator[Event]:
    """Every event of the file, read with an XSpace protobuf module (TensorFlow ships one). Times
    count from the file's earliest line, in integer picoseconds until the last step: seconds since
    the epoch (about 1.7e9) keep only a quarter of a microsecond in a float, and two back-to-back
    ops a microsecond long would then overlap, and one be taken for the other's inner layer."""
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    origin_ns = min((line.timestamp_ns for plane in space.planes for line in plane.lines), default=0)
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            line_ps = (line.timestamp_ns - origin_ns) * 1000
            for e in line.events:
                yield Event(
                    plane.name,
                    line.name,
                    names.get(e.metadata_id, ""),
                    (line_ps + e.offset_ps) * 1e-12,
                    e.duration_ps * 1e-12,
                )


def events_from_jax(path: Path, profile_data: Any) -> Iterator[Event]:
    """Every event of the file, read with jax.profiler.ProfileData (JAX's own reader)."""
    for plane in profile_data.from_file(str(path)).planes:
        for line in plane.lines:
            for e in line.events:
                yield Event(plane.name, line.name, e.name, e.start_ns * 1e-9, e.duration_ns * 1e-9)


def tally(events: Iterator[Event], op_of: Callable[[Event], str | None]) -> dict[str, tuple[int, float, float]]:
    """{op type: (executions, host seconds, device seconds)} of the events op_of() names an op
    (None: not an op); an event on a device plane counts as device time. An event inside another
    of the same op on the same line (a dispatch layer entered twice) is that one execution."""
    out: dict[str, tuple[int, float, float]] = {}
    open_until: dict[tuple[str, str, str], float] = {}
    for e in sorted(events, key=lambda e: e.start_s):
        op = op_of(e)
        if op is None:
            continue
        where = (e.plane, e.line, op)
        if e.start_s < open_until.get(where, -1.0):
            continue
        open_until[where] = e.start_s + e.duration_s
        count, host, device = out.get(op, (0, 0.0, 0.0))
        on_device = e.plane.startswith("/device:")
        out[op] = (
            count + 1,
            host + (0.0 if on_device else e.duration_s),
            device + (e.duration_s if on_device else 0.0),
        )
    return out
