"""The results history per commit: store.py (SQLite or PostgreSQL through SQLAlchemy Core, schema
version and migrations), commits.py (a run's commit from git), series.py (a case's points per
commit and machine), changes.py (change points: ruptures' PELT, then each change located to its
first commit), dashboard.py (a static site), export.py (github-action-benchmark's data.js),
recorder.py (`run --history`), simulate.py (the detector on this machine's noise)."""
