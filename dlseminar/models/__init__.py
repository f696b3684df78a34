"""Model zoo: importing this package registers every architecture in MODELS."""
from __future__ import annotations

from ..errors import ConfigError
from ..registry import MODELS, call_builder
from . import alexnet, cnn, googlenet, mlp, perceptron, resnet, unet, vgg  # noqa: F401  (registration side effects)
from . import detector  # noqa: F401  (after the zoo: its backbones are zoo models)

PLAIN = ("scores", "values")  # what a model gives unless its entry says otherwise (outputs=...)


def build_model(cfg, in_shape, num_outputs, output_kind):
    """Build cfg.model.name with the model.* keys its builder accepts.

    output_kind: 'scores' (classification; the task applies sigmoid/softmax), 'values', or 'detections'
    (box lists: only models registered with outputs=('detections',) give them).
    """
    entry = MODELS.get(cfg["model.name"])
    gives = entry.meta.get("outputs", PLAIN)
    if output_kind not in gives:  # e.g. a classifier on detection data, or a detector on class labels
        fits = [e.name for e in MODELS.entries() if output_kind in e.meta.get("outputs", PLAIN)]
        raise ConfigError(f"model {entry.name!r} gives {' or '.join(gives)}, but this dataset's task needs "
                          f"{output_kind}; models that do: {', '.join(fits[:8])}{', ...' if len(fits) > 8 else ''}")
    # init_from and freeze are read by finetune.py after the model is built, not by the builders
    return call_builder(entry, cfg, "model", common=("name", "init_from", "freeze"), in_shape=tuple(in_shape),
                        num_outputs=num_outputs, output_kind=output_kind)
