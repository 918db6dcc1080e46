"""DAVIS ``db_info.yml``: per-sequence attributes and the ``eval_t`` flag of the DAVIS-2016 toolkit.

The DAVIS-2016 release ships ``Annotations/db_info.yml`` (fperazzi/davis reads it from
``cfg.FILES.DB_INFO = <root>/Annotations/db_info.yml``)::

    attributes: [AC, BC, CS, DB, DEF, EA, FM, HO, IO, LR, MB, OCC, OV, ROT, SC, SV]
    sets: [training, test]
    sequences:
    - attributes: [DEF]
      name: bear
      num_frames: 82
      set: training
      eval_t: True

It lists all 50 sequences whatever the folder holds (``../shared/data/davis2016-mini`` has 3 of
them): entries of absent sequences are kept in ``DBInfo.sequences`` and simply never looked up.
The official toolkit uses the file twice:

* per-attribute analysis (``experiments/eval_attributes.py``): a method's score on attribute A
  is the mean over the sequences whose ``attributes`` contain A;
* T (``dataset/utils.py::db_eval_sequence``): T is computed only for sequences with
  ``eval_t: True``; every other sequence, **including one the file does not list**, gets
  ``T = NaN`` and drops out of the ``nanmean``.

The built-in synthetic generator writes a file of the same layout with its own tags
(``vosbench.data.synthetic``); it adds ``attribute_descriptions`` (code -> meaning), a key the
DAVIS toolkit does not read. Bad files raise ``DataError`` naming the file and the entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from vosbench.utils.io import DataError

#: Where a DAVIS folder keeps the file (the toolkit's path first; the 2016 README says ROOT/).
DB_INFO_LOCATIONS = ("Annotations/db_info.yml", "db_info.yml")

#: Meanings of the DAVIS-2016 attribute codes (Perazzi et al., CVPR 2016, Table 1). ``ROT``
#: appears in the released db_info.yml but not in that table; it is shown by its code.
DAVIS_ATTRIBUTES = {
    "AC": "appearance change", "BC": "background clutter", "CS": "camera shake",
    "DB": "dynamic background", "DEF": "deformation", "EA": "edge ambiguity",
    "FM": "fast motion", "HO": "heterogeneous object", "IO": "interacting objects",
    "LR": "low resolution", "MB": "motion blur", "OCC": "occlusion", "OV": "out of view",
    "SC": "shape complexity", "SV": "scale variation",
}


@dataclass(frozen=True)
class SequenceInfo:
    """One ``sequences`` entry."""

    name: str
    attributes: tuple[str, ...]
    eval_t: bool = True
    num_frames: int | None = None
    set: str | None = None

    def to_meta(self) -> dict:
        """The plain-JSON form put into ``VideoSample.meta["db_info"]``."""
        return {"listed": True, "attributes": list(self.attributes), "eval_t": self.eval_t,
                "num_frames": self.num_frames, "set": self.set}


@dataclass
class DBInfo:
    """A parsed ``db_info.yml``.

    Attributes:
        path: the file read.
        attributes: the attribute codes declared at the top (order of the file).
        sets: the declared sets (``training``, ``test``), may be empty.
        sequences: name -> entry, for every listed sequence (present on disk or not).
        descriptions: code -> meaning (``attribute_descriptions`` key, else the DAVIS table).
    """

    path: Path
    attributes: list[str]
    sets: list[str]
    sequences: dict[str, SequenceInfo]
    descriptions: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> SequenceInfo | None:
        return self.sequences.get(name)

    def eval_t(self, name: str) -> bool:
        """Official rule: T only for listed sequences flagged ``eval_t: True``."""
        s = self.sequences.get(name)
        return bool(s is not None and s.eval_t)

    def meta_for(self, name: str) -> dict:
        """``VideoSample.meta["db_info"]`` of sequence ``name`` (``listed: False`` when absent)."""
        s = self.sequences.get(name)
        if s is None:
            return {"listed": False, "attributes": [], "eval_t": False, "num_frames": None,
                    "set": None}
        return s.to_meta()

    def attributes_of(self, names: Iterable[str]) -> dict[str, list[str]]:
        """name -> attribute list, for the listed ones among ``names``."""
        return {n: list(self.sequences[n].attributes) for n in names if n in self.sequences}


def _str_list(x: Any, where: str, what: str) -> list[str]:
    if x is None:
        return []
    if not isinstance(x, list) or not all(isinstance(a, (str, int)) for a in x):
        raise DataError(f"{where}: {what} must be a list of names, got {x!r}")
    return [str(a) for a in x]


def read_db_info(path: str | Path) -> DBInfo:
    """Parse a ``db_info.yml`` (DAVIS layout).

    Raises:
        DataError: unreadable YAML, no ``sequences`` list, an entry without ``name``, a
            non-boolean ``eval_t``, a sequence listed twice, or an entry whose attribute is not
            declared in the top-level ``attributes`` list (when that list is given).
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise DataError(f"{p}: missing file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{p}: not a readable YAML file ({type(e).__name__}: "
                        f"{' '.join(str(e).split())})") from None
    if not isinstance(data, dict) or not isinstance(data.get("sequences"), list):
        raise DataError(f"{p}: expected a mapping with a 'sequences' list (DAVIS db_info.yml layout)")
    declared = _str_list(data.get("attributes"), str(p), "'attributes'")
    sets = _str_list(data.get("sets"), str(p), "'sets'")
    desc = data.get("attribute_descriptions") or {}
    if not isinstance(desc, dict):
        raise DataError(f"{p}: 'attribute_descriptions' must map codes to text, got {desc!r}")
    seqs: dict[str, SequenceInfo] = {}
    for k, e in enumerate(data["sequences"]):
        where = f"{p}: sequences[{k}]"
        if not isinstance(e, dict) or not e.get("name"):
            raise DataError(f"{where}: entry without a 'name' ({e!r})")
        name = str(e["name"])
        where = f"{where} ({name})"
        if name in seqs:
            raise DataError(f"{where}: sequence listed twice")
        attrs = _str_list(e.get("attributes"), where, "'attributes'")
        unknown = [a for a in attrs if declared and a not in declared]
        if unknown:
            raise DataError(f"{where}: attributes {unknown} are not declared in the top-level "
                            f"'attributes' list {declared}")
        eval_t = e.get("eval_t", True)
        if not isinstance(eval_t, bool):
            raise DataError(f"{where}: eval_t must be True or False, got {eval_t!r}")
        nf = e.get("num_frames")
        if nf is not None and not (isinstance(nf, int) and nf >= 0):
            raise DataError(f"{where}: num_frames must be a non-negative integer, got {nf!r}")
        seqs[name] = SequenceInfo(name, tuple(attrs), eval_t, nf,
                                  None if e.get("set") is None else str(e["set"]))
    if not declared:  # no header list: the codes in order of first use
        declared = list(dict.fromkeys(a for s in seqs.values() for a in s.attributes))
    descriptions = {a: str(desc.get(a, DAVIS_ATTRIBUTES.get(a, ""))) for a in declared}
    return DBInfo(p, declared, sets, seqs, {a: d for a, d in descriptions.items() if d})


def find_db_info(root: str | Path) -> Path | None:
    """The ``db_info.yml`` of a dataset folder (``Annotations/`` first, then the root), or None."""
    for rel in DB_INFO_LOCATIONS:
        p = Path(root) / rel
        if p.is_file():
            return p
    return None


def load_db_info(root: str | Path) -> DBInfo | None:
    """``read_db_info`` of the folder's file, None when it has none."""
    p = find_db_info(root)
    return None if p is None else read_db_info(p)


def dataset_attributes(dataset, max_videos: int | None = None) -> dict:
    """The db_info facts of a built dataset's videos, JSON-able (for the bench's dataset info).

    Uses ``dataset.db_info`` (the DAVIS loaders read it) or the ``db_info.yml`` of
    ``dataset.root`` (YouTube-VIS folders of the synthetic generator).

    Returns:
        ``{}`` without a file, else ``{"db_info": path, "attributes": {video: [codes]},
        "attribute_order": [codes], "attribute_descriptions": {code: text},
        "eval_t": {video: bool}}`` over the first ``max_videos`` videos; videos the file does
        not list get no ``attributes`` entry and ``eval_t`` False (the official T rule).
    """
    info = getattr(dataset, "db_info", None)
    if info is None and getattr(dataset, "root", None) is not None:
        info = load_db_info(dataset.root)
    if info is None:
        return {}
    recs = list(getattr(dataset, "videos", []))
    recs = recs if max_videos is None else recs[:max_videos]
    # db_info names a video by its folder name: YouTube-VIS loaders id videos by the json id
    # and keep the name in ``extra["video_name"]``; the result is keyed by the dataset's id
    name = {str(r.video_id): str(r.extra.get("video_name") or r.video_id) for r in recs}
    return {"db_info": str(info.path),
            "attributes": {v: list(info.sequences[n].attributes) for v, n in name.items()
                           if n in info.sequences},
            "attribute_order": list(info.attributes), "attribute_descriptions": dict(info.descriptions),
            "eval_t": {v: info.eval_t(n) for v, n in name.items()}}


def write_db_info(path: str | Path, sequences: list[dict], *, attributes: list[str],
                  descriptions: dict[str, str] | None = None, sets: list[str] | None = None,
                  header: str = "") -> None:
    """Write a ``db_info.yml`` in the DAVIS layout (atomically).

    Args:
        sequences: entries ``{name, attributes, num_frames, set, eval_t}`` in file order.
        attributes: the declared codes (top-level list).
        descriptions: optional code -> meaning (``attribute_descriptions``).
        header: comment lines written at the top (``# `` is added).
    """
    from vosbench.utils.io import atomic_write

    seqs = [{"attributes": list(s.get("attributes", [])), "name": str(s["name"]),
             "num_frames": s.get("num_frames"), "set": s.get("set"),
             "eval_t": bool(s.get("eval_t", True))} for s in sequences]

    def dump(d: dict, flow: bool | None) -> str:  # lists inline as in the DAVIS file
        return yaml.safe_dump(d, sort_keys=False, default_flow_style=flow, width=200)

    text = "".join(f"# {ln}\n" if ln else "#\n" for ln in header.splitlines())
    text += dump({"attributes": list(attributes), "sets": list(sets or [])}, None)
    if descriptions:
        text += dump({"attribute_descriptions": dict(descriptions)}, False)
    text += dump({"sequences": seqs}, None)
    with atomic_write(path, "w") as f:
        f.write(text)


__all__ = ["DAVIS_ATTRIBUTES", "DB_INFO_LOCATIONS", "DBInfo", "SequenceInfo", "dataset_attributes", "find_db_info",
           "load_db_info", "read_db_info", "write_db_info"]
