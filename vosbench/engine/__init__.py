"""Training loop, hooks, checkpoints, streaming inference and online fine-tuning.

    from vosbench.engine import SimpleTrainer, train, inference_on_dataset
"""
from vosbench.engine.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from vosbench.engine.train_loop import HookBase, SimpleTrainer, TrainerBase, TrainingStepModule

__all__ = [
    "HookBase", "TrainerBase", "SimpleTrainer", "TrainingStepModule",
    "save_checkpoint", "load_checkpoint", "load_model_weights",
    "train", "evaluate", "inference_on_dataset", "DavisWriter", "YTVISWriter",
]


def __getattr__(name: str):
    # Lazy: these pull in the data and metrics packages, which the trainer itself does not need.
    if name == "train":
        from vosbench.engine.defaults import train

        return train
    if name in ("inference_on_dataset", "DavisWriter", "YTVISWriter", "evaluate"):
        from vosbench.engine import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'vosbench.engine' has no attribute {name!r}")
