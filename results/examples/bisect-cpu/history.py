"""A throwaway history to bisect: a clone of this repository with COMMITS commits on top, each
changing a comment in kernels/ (so the gate would pair them in one process), one of them (AT, 1 =
the first) planting a change:

  slow    NumPy's ReLU also computes its maximum 19 times more and drops it: the manual step about
          10% slower at n=5000 on one thread, its counters unchanged (the ops it calls are the same)
  matmul  the hand-written step computes its first layer twice (an extra ops.lin: a counter change)
  none    nothing: every commit changes comments only

With --broken K, commit K also breaks NumPy's ReLU (it returns its input: the step fails its check
against the float64 reference) and commit K+1 mends it: a commit a bisection must skip.

Usage: python history.py FOLDER {slow,matmul,none} AT [--broken K] [--commits 30] [--source REPO]
Prints the clone's GOOD and BAD shas and the planted commit's."""

import argparse
import subprocess
from pathlib import Path

PLANTS = {
    "slow": (
        "kernels/numpy_steps.py",
        "def relu(x: Array) -> Array:\n    return np.maximum(x, 0)\n",
        "def relu(x: Array) -> Array:\n"
        "    for _ in range(19):\n        np.maximum(x, 0)\n    return np.maximum(x, 0)\n",
    ),
    "matmul": (
        "kernels/lesson.py",
        "        out = ops.lin(inputs[-1], w, b)\n",
        "        out = ops.lin(inputs[-1], w, b)\n        if k == 0:\n            out = ops.lin(inputs[-1], w, b)\n",
    ),
}
FILLERS = ("kernels/numpy_steps.py", "kernels/array_ops.py", "kernels/lesson.py", "kernels/cost.py")


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=bisect", "-c", "user.email=bisect@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("plant", choices=("slow", "matmul", "none"))
    p.add_argument("at", type=int)
    p.add_argument("--broken", type=int)
    p.add_argument("--commits", type=int, default=30)
    p.add_argument("--source", default=str(Path(__file__).resolve().parents[3]))
    args = p.parse_args()
    folder = Path(args.folder)
    subprocess.run(["git", "clone", "-q", args.source, str(folder)], check=True)
    good = git(folder, "rev-parse", "HEAD")
    planted = None
    for i in range(1, args.commits + 1):
        path = folder / FILLERS[i % len(FILLERS)]
        path.write_text(path.read_text() + f"# history filler {i}\n")
        subject = f"Filler {i}: a comment in {path.name}"
        if i == args.at and args.plant != "none":
            where, old, new = PLANTS[args.plant]
            target = folder / where
            text = target.read_text()
            assert old in text, f"{where}: the plant's anchor is gone"
            target.write_text(text.replace(old, new, 1))
            subject = f"Plant {args.plant} in {Path(where).name} (with filler {i})"
        relu = folder / "kernels" / "numpy_steps.py"
        if i == args.broken:
            relu.write_text(relu.read_text().replace("    return np.maximum(x, 0)\n", "    return x  # broken\n", 1))
            subject = f"Break NumPy's ReLU ({subject})"
        if args.broken is not None and i == args.broken + 1:
            relu.write_text(relu.read_text().replace("    return x  # broken\n", "    return np.maximum(x, 0)\n", 1))
            subject = f"Mend NumPy's ReLU ({subject})"
        git(folder, "commit", "-q", "-am", subject)
        if i == args.at:
            planted = git(folder, "rev-parse", "HEAD")
    print(f"good={good} bad={git(folder, 'rev-parse', 'HEAD')} planted={planted or 'none'}")


if __name__ == "__main__":
    main()
