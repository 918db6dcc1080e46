"""Benchmark suites: which methods run on which datasets, what to report and what to expect.

A suite is a YAML file (``benchmarks/suites/<name>.yaml``)::

    name: default
    description: one line shown in the report
    datasets:                       # key -> how to build it
      synthetic_vos:
        config: synthetic           # configs/dataset/<config>.yaml (Hydra group ``dataset``)
        overrides: [dataset.num_videos=4]   # Hydra overrides applied when composing
        root: cache                 # "cache": <cache dir>/data/<key>; or a path (repo-relative)
        root_option: null           # CLI option that overrides root, e.g. davis2016-root
        optional: false             # true: a missing root skips the dataset, with a message
        metric: null                # METRICS name; default: the dataset class's ``metric``
        metric_args: {}             # evaluator keyword arguments, e.g. {with_t: true}
        max_videos: null
        reported_as: null           # key of benchmarks/reported.yaml shown beside it
        note: ""                    # shown in the report (e.g. "3 of the 20 val sequences")
    methods:                        # one leaderboard row each
      - row: first_frame_copy       # unique row label
        method: first_frame_copy    # configs/method/<method>.yaml (Hydra group ``method``)
        overrides: []               # Hydra overrides, e.g. [method.flow.name=zero]
        checkpoint: null            # repo-relative path; must exist when given
        datasets: null              # dataset keys; default: every dataset of the method's task
    expected:                       # checked by --verify, values in results.json units
      - {row: first_frame_copy, dataset: synthetic_vos, metric: "J&F", value: 0.71, tol: 0.02}

Validation (``Suite.validate``) happens before anything runs, so a typo in a suite fails in a
second with a message naming the suite file, the entry and the accepted values.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vosbench.utils.resources import resource_path  # noqa: E402  (clone folder or package data)

REPO = Path(__file__).resolve().parents[2]
SUITE_DIR = resource_path("benchmarks/suites")
REPORTED_FILE = resource_path("benchmarks/reported.yaml")

# Columns of the leaderboard, in order, per task. Keys are the evaluators' flat keys.
VOS_COLUMNS = ["J&F", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "T_mean"]
VIS_COLUMNS = ["mAP", "AP50", "AP75", "AR1", "AR10"]
COST_COLUMNS = ["fps", "peak_mem_mb", "params_m"]
METRIC_TASK = {"davis2016": "vos", "davis2017": "vos", "davis2017_unsupervised": "vos",
               "segtrackv2": "vos", "ytvis": "vis"}


class SuiteError(ValueError):
    """A suite file is malformed or names something that does not exist."""


@dataclass
class DatasetSpec:
    key: str
    config: str
    overrides: list[str] = field(default_factory=list)
    root: str | None = None
    root_option: str | None = None
    optional: bool = False
    metric: str | None = None
    metric_args: dict = field(default_factory=dict)
    max_videos: int | None = None
    reported_as: str | None = None
    note: str = ""


@dataclass
class MethodSpec:
    row: str
    method: str
    overrides: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    datasets: list[str] | None = None
    note: str = ""


@dataclass
class Expectation:
    row: str
    dataset: str
    metric: str
    value: float
    tol: float


@dataclass
class Suite:
    name: str
    path: Path
    description: str
    datasets: dict[str, DatasetSpec]
    methods: list[MethodSpec]
    expected: list[Expectation]
    raw_text: str

    def row(self, name: str) -> MethodSpec:
        for m in self.methods:
            if m.row == name:
                return m
        raise SuiteError(f"{self.path}: no row {name!r}; rows: {[m.row for m in self.methods]}")

    def select(self, rows: list[str] | None = None, datasets: list[str] | None = None) -> "Suite":
        """A copy keeping only the given rows / dataset keys (None keeps all)."""
        for r in rows or []:
            self.row(r)
        for d in datasets or []:
            if d not in self.datasets:
                raise SuiteError(f"{self.path}: no dataset {d!r}; datasets: {sorted(self.datasets)}")
        keep_ds = {k: v for k, v in self.datasets.items() if datasets is None or k in datasets}
        keep_m = []
        for m in self.methods:
            if rows is not None and m.row not in rows:
                continue
            if m.datasets is not None:
                # A row restricted to datasets that were all deselected has nothing to run.
                only = [d for d in m.datasets if d in keep_ds]
                if not only:
                    continue
                m = dataclasses.replace(m, datasets=only)
            keep_m.append(m)
        keep_e = [e for e in self.expected if e.row in {m.row for m in keep_m} and e.dataset in keep_ds]
        return dataclasses.replace(self, datasets=keep_ds, methods=keep_m, expected=keep_e)


def _check_keys(where: str, d: Any, cls: type, required: tuple[str, ...]) -> dict:
    if not isinstance(d, dict):
        raise SuiteError(f"{where}: expected a mapping, got {type(d).__name__}")
    allowed = {f.name for f in dataclasses.fields(cls)} - {"key"}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {unknown}; allowed keys: {sorted(allowed)}")
    missing = [k for k in required if k not in d or d[k] in (None, "")]
    if missing:
        raise SuiteError(f"{where}: missing required key(s) {missing}")
    for k in ("overrides", "datasets"):
        if k in d and d[k] is not None:
            if isinstance(d[k], str):
                d[k] = [d[k]]
            if not isinstance(d[k], list) or not all(isinstance(x, str) for x in d[k]):
                raise SuiteError(f"{where}: {k!r} must be a list of strings, got {d[k]!r}")
    if "metric_args" in d:
        if d["metric_args"] is None:
            d["metric_args"] = {}
        if not isinstance(d["metric_args"], dict):
            raise SuiteError(f"{where}: 'metric_args' must be a mapping, got {d['metric_args']!r}")
    return d


def resolve_suite_path(name_or_path: str | os.PathLike) -> Path:
    """``default`` -> ``benchmarks/suites/default.yaml``; an existing path is used as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise SuiteError(f"{p}: suite file not found")
        return p
    candidate = SUITE_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(q.stem for q in SUITE_DIR.glob("*.yaml"))
        raise SuiteError(f"unknown suite {str(name_or_path)!r}: {candidate} does not exist; "
                         f"known suites: {known}")
    return candidate


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    """Parse and structurally check a suite (names are checked by ``validate_suite``)."""
    path = resolve_suite_path(name_or_path)
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: malformed YAML ({e})") from e
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite is a mapping with datasets/methods, got {type(raw).__name__}")
    allowed_top = {"name", "description", "datasets", "methods", "expected"}
    unknown = sorted(set(raw) - allowed_top)
    if unknown:
        raise SuiteError(f"{path}: unknown top-level key(s) {unknown}; allowed: {sorted(allowed_top)}")
    if not raw.get("datasets"):
        raise SuiteError(f"{path}: no datasets")
    if not raw.get("methods"):
        raise SuiteError(f"{path}: no methods")
    datasets: dict[str, DatasetSpec] = {}
    if not isinstance(raw["datasets"], dict):
        raise SuiteError(f"{path}: 'datasets' must map a key to a dataset entry")
    for key, d in raw["datasets"].items():
        d = _check_keys(f"{path}: dataset {key!r}", dict(d or {}), DatasetSpec, ("config",))
        datasets[str(key)] = DatasetSpec(key=str(key), **d)
    methods: list[MethodSpec] = []
    if not isinstance(raw["methods"], list):
        raise SuiteError(f"{path}: 'methods' must be a list of rows")
    for i, m in enumerate(raw["methods"]):
        m = _check_keys(f"{path}: methods[{i}]", dict(m or {}), MethodSpec, ("method",))
        m.setdefault("row", m["method"])
        methods.append(MethodSpec(**m))
    rows = [m.row for m in methods]
    dup = sorted({r for r in rows if rows.count(r) > 1})
    if dup:
        raise SuiteError(f"{path}: duplicate row name(s) {dup}; give each row a unique 'row'")
    for m in methods:
        for d in m.datasets or []:
            if d not in datasets:
                raise SuiteError(f"{path}: row {m.row!r} names unknown dataset {d!r}; "
                                 f"datasets of this suite: {sorted(datasets)}")
    expected: list[Expectation] = []
    for i, e in enumerate(raw.get("expected") or []):
        where = f"{path}: expected[{i}]"
        e = _check_keys(where, dict(e or {}), Expectation, ("row", "dataset", "metric", "value", "tol"))
        if e["row"] not in rows:
            raise SuiteError(f"{where}: unknown row {e['row']!r}; rows: {rows}")
        if e["dataset"] not in datasets:
            raise SuiteError(f"{where}: unknown dataset {e['dataset']!r}; datasets: {sorted(datasets)}")
        try:
            e["value"], e["tol"] = float(e["value"]), float(e["tol"])
        except (TypeError, ValueError) as err:
            raise SuiteError(f"{where}: value and tol must be numbers ({err})") from err
        if e["tol"] < 0:
            raise SuiteError(f"{where}: tol must be >= 0")
        expected.append(Expectation(**e))
    return Suite(name=str(raw.get("name") or path.stem), path=path,
                 description=str(raw.get("description") or ""), datasets=datasets,
                 methods=methods, expected=expected, raw_text=text)


def load_reported(path: str | os.PathLike = REPORTED_FILE) -> dict[str, dict]:
    """``benchmarks/reported.yaml``: benchmark key -> {description, rows: [{method, source, metrics}]}.

    Values are as printed in the papers (percent); they are never mixed with measured rows.
    """
    p = Path(path)
    if not p.is_file():
        return {}
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise SuiteError(f"{p}: malformed YAML ({e})") from e
    for key, bench in raw.items():
        if not isinstance(bench, dict) or not isinstance(bench.get("rows"), list):
            raise SuiteError(f"{p}: entry {key!r} needs a 'rows' list")
        for i, r in enumerate(bench["rows"]):
            if not isinstance(r, dict) or not {"method", "source", "metrics"} <= set(r):
                raise SuiteError(f"{p}: {key}.rows[{i}] needs method, source and metrics")
            for k, v in r["metrics"].items():
                if not isinstance(v, (int, float)):
                    raise SuiteError(f"{p}: {key}.rows[{i}].metrics.{k} is not a number: {v!r}")
    return raw
