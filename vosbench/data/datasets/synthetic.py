"""The built-in ``synthetic`` dataset: generated on first use, then read by the real loaders."""
from __future__ import annotations

import os
from pathlib import Path

from vosbench.data.datasets.davis import DAVIS2017
from vosbench.data.datasets.ytvis import YTVIS2019
from vosbench.data.synthetic import FADE_ALPHA, cached_generate
from vosbench.registry import DATASETS

DEFAULT_CACHE = Path(os.environ.get("VOSBENCH_CACHE", Path.home() / ".cache" / "vosbench")) / "synthetic"


@DATASETS.register("synthetic")
def synthetic(*, root: str | Path | None = None, split: str = "train", format: str = "davis2017",
              num_videos: int = 4, num_frames: int = 6, height: int = 64, width: int = 96,
              max_objects: int = 3, seed: int = 0, resize_short: int | None = None, fade: float = 0.0,
              distractors: bool = True, fast_objects: bool = True,
              fade_alpha: tuple[float, float] | list[float] = FADE_ALPHA, motion_scale: float = 1.0,
              late_entries: bool | None = None, _problems=None):
    """Moving-shapes videos written as a real DAVIS-2017 or YouTube-VIS folder, then loaded.

    Args:
        root: cache folder (default ``$VOSBENCH_CACHE/synthetic`` or ``~/.cache/vosbench/synthetic``);
            each parameter set gets its own sub-folder, generated once.
        split: ``train`` / ``val`` / any name: disjoint random streams of the same seed.
        format: ``davis2017`` (semi-supervised VOS) or ``ytvis`` (VIS, categories = shapes).
        num_videos, num_frames, height, width, max_objects, seed, fade: see
            ``vosbench.data.synthetic.generate`` (``fade`` > 0: objects fade to low contrast for
            a few frames; default 0 leaves the data and its cache folder unchanged).
        distractors, fast_objects: see ``generate``; both ``False`` gives the VIS-clean
            variant (every instance annotated, no fast movers; ``synthetic_vis_clean.yaml``).
        fade_alpha: alpha range of a faded object (``synthetic_fade_hard.yaml``: near 0, the
            object all but vanishes).
        motion_scale: factor on object velocities (``synthetic_fade_slow.yaml``: 0.25, about
            one cell per frame of the stride-4 level the tiny models read these objects from).
        late_entries: objects that enter after frame 0. ``None`` (default): in the ``train``
            split and in VIS data only; every other VOS split (``val``, the built-in benchmark)
            has every annotated object in frame 0, because the DAVIS-2017 protocol scores only
            the first frame's objects (a late one would be ignored with a warning, so the
            benchmark would not measure what it says). ``True`` / ``False`` force it.
        resize_short: passed to the loader.
        _problems: check mode of the loader (``vosbench.data.datasets.base.check_config``).
    Returns:
        a ``DAVIS2017`` or ``YTVIS2019`` dataset over the generated folder.
    """
    if format not in ("davis2017", "ytvis"):
        raise ValueError(f"synthetic: format must be 'davis2017' or 'ytvis', got {format!r}")
    if late_entries is None:
        late_entries = format == "ytvis" or split == "train"
    folder = cached_generate(root or DEFAULT_CACHE, fmt=format, split=split, num_videos=num_videos,
                             num_frames=num_frames, height=height, width=width,
                             max_objects=max_objects, seed=seed, fade=fade,
                             distractors=distractors, fast_objects=fast_objects, fade_alpha=fade_alpha,
                             motion_scale=motion_scale, late_entries=bool(late_entries))
    if format == "davis2017":
        ds = DAVIS2017(root=folder, split=split, resize_short=resize_short, _problems=_problems)
    else:
        ds = YTVIS2019(root=folder, split=split, resize_short=resize_short, _problems=_problems)
    ds.dataset_name = f"synthetic-{format}"
    return ds
