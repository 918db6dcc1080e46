"""Benchmark suites -> leaderboards (``python tools/bench.py``).

* ``suite``: the suite YAML schema and its validation (``load_suite``, ``SuiteError``).
* ``runner``: ``plan_suite`` (check + build datasets + cache keys) and ``run_jobs`` (through
  ``vosbench.engine.inference_on_dataset``), sharding.
* ``cache``: per-(method config, checkpoint, dataset, code, device) result cache.
* ``report``: leaderboard.md / .csv, results.json, report.html with plots.
* ``verify``: expected values with tolerances (``--verify``).
* ``provenance``: git commit, hashes, package versions, device, date, command.
"""
from vosbench.bench.suite import Suite, SuiteError, load_reported, load_suite

__all__ = ["Suite", "SuiteError", "load_suite", "load_reported"]
