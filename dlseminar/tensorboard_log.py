"""logging.tensorboard: TensorBoard event files in RUN/tensorboard (torch.utils.tensorboard).

What goes in, all against the optimizer step so that one x-axis serves every chart:
- step/loss and step/lr after every optimizer step;
- every number of the epoch's metrics.csv row (train/loss, val/acc, lr, seconds, ...) and `epoch`
  at the epoch's last step;
- at the end, each plots/*.png as an image and the hyper-parameters (the whole flat config) with
  the final metrics (hparams/test/..., hparams/best/...) for TensorBoard's HPARAMS tab.

`tensorboard --logdir runs` then shows every run side by side. A resumed run opens a new event
file with purge_step = the checkpoint's step + 1, so what an interrupted process wrote after its
last checkpoint is hidden and the curves show no doubled stretch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from .config import SCHEMA
from .errors import ConfigError
from .observers import OBSERVERS, Observer

if TYPE_CHECKING:  # only named in annotations: summary.py loads the tasks, which import the observers
    from .summary import RunSummary


@OBSERVERS.register("tensorboard")
def _tensorboard(setup, optimizer, main: bool, run_dir: Path):
    """logging.tensorboard: event files for TensorBoard (rank 0 only)."""
    if not (main and setup.cfg["logging.tensorboard"]):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:  # torch.utils.tensorboard needs the tensorboard package
        raise ConfigError("logging.tensorboard needs the tensorboard package: pip install tensorboard") from None
    return TensorBoardLog(run_dir / "tensorboard", setup.cfg)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class TensorBoardLog(Observer):
    name = "tensorboard"
    wants_steps = True

    def __init__(self, logdir: Path, cfg):
        self.logdir, self.cfg = logdir, cfg
        self.step = 0  # optimizer steps so far
        self.purge: int | None = None  # set on resume
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:  # opened at the first event: a resume has set its purge step by then
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.logdir), purge_step=self.purge, flush_secs=30)
        return self._writer

    def step_end(self, step: int, loss: float, lr: float) -> None:
        self.step = step
        self.writer.add_scalar("step/loss", loss, step)
        self.writer.add_scalar("step/lr", lr, step)

    def epoch_end(self, epoch: int, model, row: dict) -> None:
        w = self.writer
        for key, v in row.items():
            if _number(v):
                w.add_scalar(key, v, self.step)  # `epoch` included: the step -> epoch mapping

    def finish(self, run_dir: Path, summary: RunSummary) -> None:
        import numpy as np
        from PIL import Image
        from torch.utils.tensorboard.summary import hparams

        w = self.writer
        for rel in summary.plots or []:
            if rel.endswith(".png"):
                with Image.open(run_dir / rel) as im:
                    w.add_image(Path(rel).stem, np.asarray(im.convert("RGB")), self.step, dataformats="HWC")
        metrics = {f"hparams/{k}": v for k, v in summary.test.items() if _number(v) and math.isfinite(v)}
        metrics.update({f"hparams/best/{k}": v for k, v in summary.best.items()
                        if _number(v) and math.isfinite(v)})
        params = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in ((k, self.cfg[k]) for k in SCHEMA)}
        for part in hparams(params, metrics):  # experiment, session start and end: what the HPARAMS tab reads
            w.file_writer.add_summary(part, self.step)
        for k, v in metrics.items():
            w.add_scalar(k, v, self.step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # flushes

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, d: dict) -> None:
        self.step = self.purge = d["step"]
        self.purge += 1  # events after the checkpoint's step came from the interrupted process
