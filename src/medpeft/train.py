"""The training entry points: ``train(backbone, data_dir, out_dir, train_config, ace_config)``,
``TrainConfig`` and the YAML run configurations (``configs/paper.yaml`` reproduces the paper).

The implementation lives in ``medpeft.training`` (one module per concept: loop, checkpoint, data,
sampler, schedule, guards, logs, validation).
"""

from __future__ import annotations

from medpeft.training.config import TrainConfig
from medpeft.training.loop import train
from medpeft.training.run_config import RunConfig, load_run_config

__all__ = ["train", "TrainConfig", "RunConfig", "load_run_config"]
