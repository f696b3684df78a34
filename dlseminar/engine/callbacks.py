"""Early stopping (with best-weight snapshots), the per-epoch console/CSV logs and the per-step CSV log."""
from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path

import torch


class EarlyStopping:
    """Watches one metric; keeps an in-memory copy of the best weights.

    patience 0 only tracks the best epoch (for best.pt and restore_best) and never stops.

    An epoch *improves* when its monitor beats the reference (the value of the last improvement) by
    more than min_delta; only an improvement resets patience. An epoch *ties* when its monitor lies
    between the reference and reference + min_delta (max mode; mirrored for min): no worse than the
    last improvement, better by no more than min_delta says is meaningful. With min_delta 0 that is
    an equal value, the usual case for an accuracy (0.92 at several epochs). A tie becomes the best
    epoch when its val/loss is no higher than the best epoch's (an equal or untracked loss: the later
    epoch, with the longer training): the first tied epoch is often a nearly untrained model.

    Ties are measured against the reference, not against the best epoch's own value, so a chain of
    ties cannot drift away from the last improvement; and a tie never resets patience, so a plateau
    of equal accuracy with a slowly falling loss still stops, at the same epoch as without the
    tie-break: only which epoch is restored changes.
    """

    TIE_BREAK = "val/loss"  # lower wins among tied epochs; every task but detection records it

    def __init__(self, monitor: str, mode: str, patience: int, min_delta: float):
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None  # the best epoch's monitor value
        self.best_epoch = 0
        self.bad_epochs = 0  # epochs since the last improvement (ties included)
        self.best_state: dict[str, torch.Tensor] | None = None
        self.reference: float | None = None  # the monitor at the last improvement: what ties are measured against
        self.best_loss: float | None = None  # the best epoch's val/loss (None: not tracked)
        self.improved = False  # this epoch became the best epoch (an improvement or a won tie): best.pt is due

    def _compare(self, v: float) -> str:
        """'improved', 'tie' or 'worse' for monitor value v against the reference."""
        if self.reference is None:
            return "improved"
        gain = v - self.reference if self.mode == "max" else self.reference - v
        return "improved" if gain > self.min_delta else "tie" if gain >= 0 else "worse"

    def _wins_tie(self, loss) -> bool:
        """A tied epoch with this val/loss replaces the best one: lower wins, equal or untracked -> the later."""
        return _loss_key(loss) <= _loss_key(self.best_loss)

    def update(self, epoch: int, logs: dict, model: torch.nn.Module) -> str | None:
        """Record this epoch; return a stop reason or None."""
        v = logs.get(self.monitor)
        self.improved = False
        if v is None or not math.isfinite(v):
            return f"{self.monitor} is not finite ({v}) at epoch {epoch}: training diverged (try a lower optim.lr)"
        verdict = self._compare(v)
        loss = logs.get(self.TIE_BREAK)
        if verdict == "improved" or (verdict == "tie" and self._wins_tie(loss)):
            self.best, self.best_epoch, self.best_loss, self.improved = v, epoch, loss, True
            self.best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        if verdict == "improved":
            self.reference, self.bad_epochs = v, 0
            return None
        self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience:
            since = epoch - self.bad_epochs  # the last improvement
            why = f"lower {self.TIE_BREAK}" if _loss_key(self.best_loss) < math.inf else "trained longer"
            tie = f", tied with epoch {since}: {why}" if self.best_epoch != since else ""
            return (f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                    f"(best {self.best:.4g} at epoch {self.best_epoch}{tie})")
        return None

    def state_dict(self, best_is_current: bool = False) -> dict:
        """best_is_current: the checkpoint's own model weights are the best ones; store a flag, not a copy."""
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "reference": self.reference, "best_loss": self.best_loss,
                "best_is_current": best_is_current, "best_state": None if best_is_current else self.best_state}

    def load_state_dict(self, d: dict, current: dict | None = None) -> None:
        self.best, self.best_epoch, self.bad_epochs = d["best"], d["best_epoch"], d["bad_epochs"]
        # a checkpoint from before the tie-break: its best epoch was always the last improvement, and its
        # val/loss unknown (the first tie after the resume wins, as when the loss is not tracked)
        self.reference, self.best_loss = d.get("reference", self.best), d.get("best_loss")
        if d.get("best_is_current"):
            self.best_state = {k: t.detach().clone() for k, t in current.items()}
        else:
            self.best_state = d["best_state"]


def _loss_key(loss) -> float:
    """A val/loss as a sort key: a missing or non-finite one ranks last."""
    return loss if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf


class MetricsCSV:
    """metrics.csv: one row per epoch, never ahead of last.pt.

    write() keeps a row in memory; commit() (called right after each last.pt write) appends the
    kept rows in one write, so a crash or SIGKILL at any moment leaves no row for an epoch the
    checkpoint does not hold. A resume rewrites the file from the checkpoint's history (rows a
    killed run wrote later are dropped), through a temp file: the old rows stay until the new are whole.
    """

    def __init__(self, path: Path, history: list[dict]):
        self.path = Path(path)
        self.columns: list[str] | None = None
        self.f = None
        self.pending: list[dict] = []
        if history:
            from ..io import atomic_open

            self.columns = list(history[0])
            data = self._encode(history, header=True)
            if not (self.path.is_file() and self.path.read_bytes() == data):  # usually it is: nothing to write
                with atomic_open(self.path, "wb") as f:
                    f.write(data)
            self.f = open(self.path, "ab", buffering=0)

    def write(self, row: dict) -> None:
        """Keep `row` until the next commit()."""
        self.pending.append(row)

    def commit(self) -> None:
        """Append the kept rows (last.pt now holds their epochs). A failed write (a full disk)
        truncates the file back: no half row is left."""
        if not self.pending:
            return
        new = self.f is None
        if new:
            self.columns = list(self.pending[0])
        data = self._encode(self.pending, header=new)
        if new:
            self.f = open(self.path, "wb", buffering=0)  # unbuffered: on a failure nothing is left to flush
        append_whole(self.f, data, self.path)
        self.pending.clear()

    def _encode(self, rows: list[dict], header: bool) -> bytes:
        buf = io.StringIO()
        w = csv.writer(buf)
        if header:
            w.writerow(self.columns)
        for row in rows:
            w.writerow([_fmt(row.get(c)) for c in self.columns])
        return buf.getvalue().encode("utf-8")

    def close(self) -> None:
        if self.f is not None:
            try:
                self.f.close()
            except OSError:
                pass
            self.f = None


def append_whole(f, data: bytes, path: Path) -> None:
    """Append `data` to the unbuffered file f in full, or not at all: a failed write (a full disk)
    truncates the file back and says so in one line (UserError)."""
    pos = f.tell()
    try:
        view = memoryview(data)
        while view:
            view = view[f.write(view):]
    except OSError as e:
        try:
            f.truncate(pos)
        except OSError:
            pass
        from ..errors import UserError

        raise UserError(f"cannot write {str(path)!r}: {e.strerror or e}; is the disk full? "
                        f"last.pt is whole; resume from it once there is space") from None


class StepsCSV:
    """steps.csv (logging.steps): one row per optimizer step, "step,epoch,train/loss" (the step's mean
    training loss, without the L1/L2 penalty, as the epoch's train/loss in metrics.csv).

    The rows of a whole run would not fit in last.pt cheaply, so they go the other way round from
    metrics.csv's: flush() appends the kept rows just *before* each last.pt write (the Trainer calls it
    from save()), and a resume cuts the file back to the checkpoint's step. The file is never behind
    last.pt, whatever moment a run is killed at, and a resumed run's rows follow on with no step twice
    or missing (the steps a killed run took after its checkpoint are taken again, to the same values).
    A run that turns logging.steps on only at a resume starts its file at that step.
    """

    HEADER = b"step,epoch,train/loss\n"

    def __init__(self, path: Path, step: int):
        """`step`: the optimizer steps the run has taken (the checkpoint's; 0 for a new run)."""
        self.path = Path(path)
        self.pending: list[str] = []
        old = self.path.read_bytes() if step and self.path.is_file() else b""
        data = self.HEADER + _rows_up_to(old, step)
        if old != data:  # equal after a clean stop: nothing to write
            from ..io import atomic_open  # the old rows stay until the cut file is whole

            with atomic_open(self.path, "wb") as f:
                f.write(data)
        self.f = open(self.path, "ab", buffering=0)

    def write(self, step: int, epoch: int, loss: float) -> None:
        """Keep one step's row until the next flush()."""
        self.pending.append(f"{step},{epoch},{loss!r}\n")

    def flush(self) -> None:
        """Append the kept rows in one write (called before a last.pt write)."""
        if self.pending:
            append_whole(self.f, "".join(self.pending).encode("utf-8"), self.path)
            self.pending.clear()

    def close(self) -> None:
        """Rows not flushed are dropped: no last.pt holds their steps (a resume takes them again)."""
        self.pending.clear()
        try:
            self.f.close()
        except OSError:
            pass


def _rows_up_to(text: bytes, step: int) -> bytes:
    """The whole rows of a steps.csv text up to `step` (rows are in step order; a cut last line ends them)."""
    lines = text.split(b"\n")
    if lines[0] + b"\n" != StepsCSV.HEADER:
        return b""  # empty, or not this writer's file: start it again
    kept = []
    for line in lines[1:-1]:  # the last piece: "" after a whole file's final newline, else a cut row
        first = line.split(b",", 1)[0]
        if not first.isdigit() or int(first) > step:
            break
        kept.append(line + b"\n")
    return b"".join(kept)


def _fmt(v):
    if isinstance(v, float):
        return repr(v)  # full precision: eval must be able to reproduce the numbers
    return "" if v is None else v


class ConsoleLog:
    """A live rich progress bar on a terminal; otherwise a plain line every few epochs."""

    def __init__(self, epochs: int, start_epoch: int, every: int, show_keys: list[str]):
        self.epochs, self.keys = epochs, show_keys
        self.tty = _isatty(sys.stdout)
        self.every = every or max(1, math.ceil(epochs / 25))
        self.progress = None
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), TimeRemainingColumn(),
                                     TextColumn("{task.description}"), transient=False)
            self.task_id = self.progress.add_task("", total=epochs, completed=start_epoch)
            self.progress.start()
        self.t0 = time.perf_counter()

    def line(self, row: dict) -> str:
        return "  ".join(f"{k} {row[k]:.4g}" for k in self.keys if k in row and isinstance(row[k], float))

    def epoch(self, row: dict, last: bool) -> None:
        e = row["epoch"]
        if self.progress is not None:
            self.progress.update(self.task_id, completed=e, description=self.line(row))
        elif last or e % self.every == 0 or e == 1:
            print(f"epoch {e}/{self.epochs}  {self.line(row)}  ({time.perf_counter() - self.t0:.1f}s)", flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _isatty(stream) -> bool:
    """A live display only on a terminal (stdout may be None when the process started with it closed)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
