"""GoogLeNet / Inception v1 (Szegedy et al. 2014), built on torchvision.models.GoogLeNet.

Outputs: in training mode with model.aux=true the model returns a plain tuple
(main, aux1, aux2) of (B, num_outputs) scores -- aux1 is the auxiliary classifier after
inception4a, aux2 the one after inception4d; the task adds their losses with a small weight
(0.3 in the paper). In eval mode, or with model.aux=false, it returns only the main scores.
Without the auxiliary heads the network has 6.6M parameters at ImageNet size.

stem 'imagenet' is torchvision's network unchanged: 7x7 stride-2 conv1 and two 3x3 stride-2
max-pools before inception3a (224 -> 28 px). stem 'small' (8-64 px inputs): conv1 becomes a
3x3 stride-1 conv (BN + ReLU as before, freshly initialised) and maxpool1/maxpool2 are
removed, so inception3 runs at the input resolution and the remaining two pools give
32 -> 16 -> 8 px for inception4/5 (the usual CIFAR GoogLeNet); it needs inputs >= 2 px.
in_channels != 3 gets a fresh conv1 either way. model.dropout > 0 sets the dropout before
the main fc; 0 keeps torchvision's 0.2 (the auxiliary heads keep their 0.7). With pretrained
weights and 3 channels, `transform_input` is on as in torchvision (it maps ImageNet-normalised
inputs to the [-1, 1] scaling the ported weights expect).
model.init other than 'default' (torchvision's init) re-initialises every conv/linear weight,
before any pretrained weights are copied in.
With model.pretrained (local cache only, see pretrained.py) the small stem's conv1 and the
heads (unless num_outputs is 1000) stay freshly initialised; torchvision's auxiliary heads
were never pretrained either.
The network class (a torchvision subclass) is in inception.py, imported only when one is built.
"""
from __future__ import annotations

from ..registry import MODELS
from .layers import init_weights
from .pretrained import check_input, image_shape, load_pretrained, resolve_stem


@MODELS.register("googlenet")
def googlenet(in_shape, num_outputs, output_kind, dropout=0.0, stem="auto", pretrained=False, aux=True,
              init="default"):
    """GoogLeNet / Inception v1 (torchvision) with its two auxiliary heads in training (model.aux)."""
    from .inception import network  # torchvision loads only when a googlenet is built

    c, h, w = image_shape(in_shape, "googlenet")
    stem = resolve_stem(stem, (c, h, w))
    model = network(c, stem, num_outputs, aux, transform_input=pretrained and c == 3,
                    dropout=dropout if dropout > 0 else 0.2)
    check_input(model, (c, h, w), "googlenet", stem)
    init_weights(model, init)  # 'default' keeps torchvision's
    if pretrained:
        load_pretrained(model, "googlenet", "conv1.conv.weight", aux_logits=True, init_weights=False)
    return model
