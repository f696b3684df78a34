"""Seeds derived from the run's seed: one formula for every stream that must differ per rank,
epoch, batch or step (shuffling, augmentation, dropout under DDP).

The numbers are part of every run's results (a recipe's figures depend on its shuffling order):
changing the formula changes them.
"""
from __future__ import annotations

# Multipliers from the last counter backwards: the last is added after x 100_003, the one before it
# after x 1_000_003. Counters below those bounds (epochs, batches, ranks) give distinct seeds.
_MULTIPLIERS = (1_000_003, 100_003)


def mix_seed(seed: int, *counters: int) -> int:
    """A 64-bit torch seed from `seed` and one or two counters:
    mix_seed(s, a) = s*100_003 + a; mix_seed(s, a, b) = (s*1_000_003 + a)*100_003 + b (mod 2**64)."""
    if not 1 <= len(counters) <= len(_MULTIPLIERS):
        raise ValueError(f"mix_seed takes 1 or 2 counters (got {len(counters)})")
    h = seed
    for c, m in zip(counters, _MULTIPLIERS[len(_MULTIPLIERS) - len(counters):]):
        h = h * m + c
    return h % 2**64  # torch seeds are 64-bit
