"""Several processes, one run: PyTorch's DistributedDataParallel under torchrun.

torchrun (`python -m torch.distributed.run`) starts one process per device and tells each its
RANK, WORLD_SIZE and LOCAL_RANK. Every process builds the same data, task and model from the
same seed and joins one process group (gloo on CPUs, NCCL on GPUs). The loaders give each rank
its slice of every global batch (train.batch_size stays the global batch; the per-epoch order
is the one a single process uses), DDP averages the gradients, and the Trainer weights each
rank's loss by its share of the batch, so a step equals the single-process step up to float
rounding. Every rank evaluates the whole validation split with the same weights; rank 0 alone
writes the run directory, checkpoints, plots and the console lines.

`dlsem train --devices N` re-launches itself under torchrun on this machine (launch()).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..seeding import mix_seed


@dataclass(frozen=True)
class Dist:
    """This process's place in the process group."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_size() -> int:
    """Processes in this run as torchrun announced them (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that talks and writes (a RANK without torchrun's WORLD_SIZE: the only one)."""
    from ..console import talks

    return talks()


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes the GPU of its LOCAL_RANK; other devices stay as they are."""
    if world_size() > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.index >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {device.index} but only {torch.cuda.device_count()} CUDA device(s) here; "
                              f"start at most that many processes per node")
        torch.cuda.set_device(device)
    return device


def init(device: torch.device) -> Dist | None:
    """Join the process group torchrun prepared; None when this is the only process."""
    world = world_size()
    if world <= 1:
        return None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"multi-process training runs on CPUs (gloo) or CUDA GPUs (NCCL), not on {device.type}")
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:  # a WORLD_SIZE left in the shell, not torchrun (which sets all of them)
        raise ConfigError(f"WORLD_SIZE={world} is set but {' and '.join(missing)} not: start several processes with "
                          f"`dlsem train --devices N` (or torchrun), or unset WORLD_SIZE and RANK")
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device, sync_batchnorm: bool) -> torch.nn.Module:
    """The model in DistributedDataParallel (batch norm layers made SyncBatchNorm first when asked).

    The conversion keeps the same Parameter objects (an optimizer built on `model` still holds
    them) and the same state_dict keys, so checkpoints load into a plain model.
    """
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm:
        if device.type != "cuda":
            raise ConfigError("train.sync_batchnorm needs CUDA devices: PyTorch's SyncBatchNorm does not run on the CPU")
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if converted is not model:  # only when the model itself is one batch-norm layer
            raise ConfigError("train.sync_batchnorm: the model is a single batch-norm layer; nothing to synchronise")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over all ranks, in place."""
    import torch.distributed as dist

    dist.all_reduce(t)
    return t


def broadcast_object(obj, src: int = 0):
    """Rank `src`'s picklable `obj` on every rank (for small things: a path, a row of metrics)."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def sync_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every rank, so all evaluate one model."""
    import torch.distributed as dist

    for b in model.buffers():
        dist.broadcast(b, 0)


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A torch seed for rank > 0 (dropout masks differ between ranks; rank 0 keeps the run's own stream)."""
    return mix_seed(seed, rank, step)


# ----------------------------------------------------------------------------- dlsem train --devices N
def strip_devices(argv: list[str]) -> list[str]:
    """The command line without its --devices option (both `--devices N` and `--devices=N`)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--devices":
            skip = True
        elif not a.startswith("--devices="):
            out.append(a)
    return out


def launch(args: list[str], nproc: int) -> int:
    """Run `dlsem <args>` in `nproc` processes on this machine under torchrun; its exit status.

    torchrun runs in its own session, so a Ctrl-C on the terminal reaches it once, through this
    process: SIGINT and SIGTERM are forwarded and torchrun passes them to every worker, which
    finish their step, let rank 0 write last.pt and exit. The status is then 128 + the signal.
    """
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # torchrun would set 1 (with a warning); share the cores instead
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    cmd = [sys.executable, "-m", "dlseminar.engine.distributed", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "dlseminar", *args]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    got: list[int] = []

    def forward(signum, frame):
        got.append(signum)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except InterruptedError:
                continue
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 128 + got[0] if got else rc


def _torchrun(argv: list[str]) -> int:
    """torchrun, minus its traceback when a worker fails: the worker has already said why in one
    `error:` line. Returns the first failed worker's exit status (128 + N for a signal N)."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    for name in list(logging.Logger.manager.loggerDict):  # its loggers set their own levels (LOGLEVEL)
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(parse_args(argv))
    except ChildFailedError as e:
        code = e.get_first_failure()[1].exitcode
        return 128 - code if code < 0 else code
    except SignalException as e:
        return 128 + int(e.sigval)
    return 0


if __name__ == "__main__":  # what launch() starts: python -m dlseminar.engine.distributed <torchrun arguments>
    sys.exit(_torchrun(sys.argv[1:]))
