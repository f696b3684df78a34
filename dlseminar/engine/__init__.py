"""The training engine: losses, optimizers, schedules, checkpoints and the Trainer."""
from . import losses, optim  # noqa: F401  (registration side effects)
