"""lmlab.train: one Trainer for every neural family.

Public surface (stable; see ``trainer.py``'s docstring for the protocols)::

    from lmlab.train import Trainer, TrainConfig, TrainingJob, LossOutput
    result = Trainer(model, objective, train_source, TrainConfig(max_steps=100), "runs/x",
                     eval_source=valid_source).fit(resume=False)

- ``trainer.py``     the loop, the BatchSource / EvalSource / Objective protocols, TrainConfig
- ``schedules.py``   constant, linear warm-up + decay, cosine, Noam (inverse square root)
- ``checkpoint.py``  atomic checkpoints (safetensors + JSON, never pickle), exact resume
- ``distributed.py`` process groups under torchrun, gradient all-reduce
- ``log.py``         JSONL metrics, TensorBoard, progress bar, loss curve, measured peak FLOP/s (MFU)
"""

from ..protocols import BatchSource, EvalSource, LossOutput, Objective
from .schedules import Schedule
from .trainer import (
    TrainConfig,
    Trainer,
    TrainingJob,
    TrainResult,
)

__all__ = [
    "BatchSource",
    "EvalSource",
    "LossOutput",
    "Objective",
    "Schedule",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingJob",
]
