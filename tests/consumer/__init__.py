"""A package so its test modules may share basenames with tests/sql/ (test_regressions.py)."""
