"""Model zoo: importing this package registers every architecture in MODELS."""
from __future__ import annotations

from ..registry import MODELS, call_builder
from . import alexnet, cnn, googlenet, mlp, perceptron, resnet, unet, vgg  # noqa: F401  (registration side effects)


def build_model(cfg, in_shape, num_outputs, output_kind):
    """Build cfg.model.name with the model.* keys its builder accepts.

    output_kind: 'scores' (classification; the task applies sigmoid/softmax) or 'values'.
    """
    entry = MODELS.get(cfg["model.name"])
    return call_builder(entry, cfg, "model", in_shape=tuple(in_shape), num_outputs=num_outputs,
                        output_kind=output_kind)
