"""What the gate raises: bad input (GateError, exit 2) and nothing to compare (it passes)."""


class GateError(ValueError):
    """The gate cannot run what was asked (bad revision, a candidate that crashes); one line."""


class NothingToCompare(Exception):
    """There is no base to compare with (no parent commit, no harness in it, no baseline here);
    the gate passes and says why."""
