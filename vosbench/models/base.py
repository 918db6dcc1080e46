"""The interface every method implements (STYLE.md §4)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import Tensor, nn

from vosbench.structures import VideoBatch, VideoPrediction, VideoSample


class VideoMethod(nn.Module, ABC):
    """A video object / instance segmentation method.

    Subclasses are registered with ``@METHODS.register("name")`` and built with keyword-only
    arguments. Two named entry points replace a mode-switching ``forward``:

    * ``training_step(batch) -> dict[str, Tensor]``: the losses (keys ``loss_*``) of one batch of
      training clips; the trainer sums them and calls ``backward``.
    * ``predict(sample) -> VideoPrediction``: inference on one whole video, streaming frames
      (called under ``torch.inference_mode`` unless ``needs_grad_at_test`` is True, as for
      methods that fine-tune online).

    Attributes:
        task: ``"vos"`` (semi-supervised, reads ``sample.reference``) or ``"vis"``.
        trainable: False for training-free methods (baselines); their ``training_step`` raises.
        needs_grad_at_test: True when ``predict`` fine-tunes online (MaskRNN, LIP) and so must run
            with autograd enabled; the method is then responsible for restoring its weights.
    """

    task: ClassVar[str] = "vos"
    trainable: ClassVar[bool] = True
    needs_grad_at_test: ClassVar[bool] = False

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        """Turn a config mapping (without ``name``) into constructor keyword arguments.

        Override to build sub-components through their registries; the default passes the
        mapping through unchanged.
        """
        return dict(cfg)

    def training_step(self, batch: VideoBatch) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} is training-free: it has no training_step")

    @abstractmethod
    def predict(self, sample: VideoSample) -> VideoPrediction:
        """Segment one video. See ``VideoPrediction`` for the output contract."""

    def random_state(self) -> dict[str, Any]:
        """The state of every random generator this method owns, for training checkpoints.

        Default: every ``np.random.Generator`` / ``RandomState`` / ``random.Random`` /
        ``torch.Generator`` held as an attribute of the method or of one of its submodules
        (e.g. MaskRNN's mask-perturbation stream), found by ``named_modules`` so a method needs
        no code for it; ``resume=true`` restores them with ``load_random_state``, which makes the
        resumed run equal to an uninterrupted one. Override both for random state kept elsewhere.
        Global python/numpy/torch streams are saved by the trainer itself.
        """
        from vosbench.engine.checkpoint import generator_states

        return generator_states(self)

    def load_random_state(self, state: dict[str, Any]) -> None:
        """Restore what ``random_state`` returned."""
        from vosbench.engine.checkpoint import load_generator_states

        load_generator_states(self, state, where=type(self).__name__)

    @property
    def device(self):
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        import torch

        return torch.device("cpu")
