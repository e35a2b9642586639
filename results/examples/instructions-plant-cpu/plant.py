"""Plant a host-side slowdown in NumPy's ReLU (kernels/numpy_steps.py of a checkout): a Python loop
of K iterations on every call, work no counter sees (no op, no FLOP, no byte moved); K=0 removes it.

    python plant.py CHECKOUT K
"""

import re
import sys
from pathlib import Path

PLANTED = r"def relu\(x: Array\) -> Array:\n(    for _ in range\(\d+\):\n        pass\n)?"


def main() -> None:
    checkout, k = Path(sys.argv[1]), int(sys.argv[2])
    path = checkout / "kernels" / "numpy_steps.py"
    loop = f"    for _ in range({k}):\n        pass\n" if k else ""
    path.write_text(re.sub(PLANTED, "def relu(x: Array) -> Array:\n" + loop, path.read_text()))


if __name__ == "__main__":
    main()
