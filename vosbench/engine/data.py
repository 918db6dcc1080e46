"""A resumable, endless training loader over a clip dataset (``DistributedSampler`` inside).

The batch stream is a pure function of ``(seed, epoch, position)``: epoch ``e`` shuffles with
``DistributedSampler(seed=seed).set_epoch(e)`` and the DataLoader's worker seeds come from a
generator seeded with ``(seed, e)``. So a run resumed at batch ``k`` skips straight to it (no
batches are loaded and thrown away) and sees the same batches as an uninterrupted run.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vosbench.config import ConfigError
from vosbench.engine import comm
from vosbench.utils.io import DataError

DATA_CHECK_LEVELS = ("header", "full", "off")


def preflight_dataset(cfg: Any, *, split: str, level: str = "header"):
    """Build the training dataset of ``cfg`` after checking every file of ``split`` with the
    reader ``check_dataset`` uses (``vosbench.data.datasets.base.check_config``).

    ``level``: ``header`` (default: every frame and annotation exists, is a complete image of the
    right kind and size; about a millisecond per file), ``full`` (also decodes every file: label
    values, a varying alpha), ``off`` (build only).

    Raises:
        ConfigError: an unknown level.
        DataError: listing EVERY problem found (one per line), before anything else is built.
    """
    from vosbench.data import build_dataset
    from vosbench.data.datasets.base import check_config

    if level not in DATA_CHECK_LEVELS:
        raise ConfigError(f"trainer.data_check must be one of {DATA_CHECK_LEVELS}, got {level!r}")
    if level == "off":
        return build_dataset(cfg, split=split)
    ds, problems = check_config(cfg, level=level, split=split)
    if problems:
        shown = problems[:50]
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise DataError(f"{len(problems)} problem(s) in the training split {split!r} of dataset "
                        f"{cfg.get('name')!r} (found before training; trainer.data_check={level}):\n  "
                        + "\n  ".join(shown) + more)
    return ds


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` that can start the current epoch after its first ``skip`` indices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class InfiniteLoader:
    """Yields ``collate_fn`` batches forever, epoch after epoch.

    Args:
        dataset: a map-style dataset (``vosbench.data.ClipDataset``).
        batch_size: clips per batch on THIS rank (the global batch divided by the world size).
        collate_fn: list of samples -> batch (``vosbench.data.collate_clips``).
        num_workers: DataLoader worker processes.
        seed: shuffling / worker seed, the same on every rank.
        start_batch: number of batches already consumed (resume); the stream continues there.
    Raises:
        ConfigError: the dataset has fewer samples per rank than one batch.
    """

    def __init__(self, dataset: Dataset, *, batch_size: int, collate_fn: Callable, num_workers: int = 0,
                 seed: int = 0, start_batch: int = 0, pin_memory: bool = False) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.collate_fn = collate_fn
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.pin_memory = pin_memory
        self.sampler = ResumableDistributedSampler(
            dataset, num_replicas=comm.get_world_size(), rank=comm.get_rank(), shuffle=True,
            seed=self.seed, drop_last=False)
        self.batches_per_epoch = self.sampler.num_samples // self.batch_size
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"the training set has {len(dataset)} clips, {self.sampler.num_samples} per rank, "  # type: ignore[arg-type]
                f"fewer than one batch of {self.batch_size}; lower trainer.batch_size or raise "
                "trainer.clip.samples_per_epoch")
        self.start_batch = int(start_batch)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[Any]:
        epoch, skip = divmod(self.start_batch, self.batches_per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            self.sampler.skip = skip * self.batch_size
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)  # per-epoch augmentation streams
            gen = torch.Generator()
            gen.manual_seed(self.seed * 1_000_003 + epoch)
            loader = DataLoader(
                self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                num_workers=self.num_workers, collate_fn=self.collate_fn, drop_last=True,
                pin_memory=self.pin_memory, generator=gen,
                persistent_workers=False)
            yield from loader
            skip = 0
            epoch += 1
