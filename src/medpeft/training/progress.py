"""Where a run stands: the data position and the counters a checkpoint must carry across a resume."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    """``epoch``/``step_in_epoch`` point at the next batch to train on; ``global_step`` counts finished
    optimizer steps (skipped ones included, since their data was consumed)."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    skipped_nonfinite: int = 0
    best_metric: float | None = None
    best_step: int | None = None

    def advance(self, steps_per_epoch: int) -> None:
        self.global_step += 1
        self.step_in_epoch += 1
        if self.step_in_epoch == steps_per_epoch:
            self.epoch += 1
            self.step_in_epoch = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
