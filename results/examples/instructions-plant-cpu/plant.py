"""Plant a host-side slowdown in NumPy's ReLU (kernels/numpy_steps.py): a Python loop of K iterations
on every call, work no counter sees (no op, no FLOP, no byte moved)."""
import re, sys
from pathlib import Path
k = int(sys.argv[2])
p = Path(sys.argv[1]) / "kernels/numpy_steps.py"
s = p.read_text()
s = re.sub(r"def relu\(x: Array\) -> Array:\n(    for _ in range\(\d+\):\n        pass\n)?",
           f"def relu(x: Array) -> Array:\n    for _ in range({k}):\n        pass\n" if k else "def relu(x: Array) -> Array:\n", s)
p.write_text(s)
