"""Every config key: its default, type, range check and one-line meaning; the docs generated from them.

SCHEMA is the one place a key is declared (what `dlsem config show` prints). This module must not
import torch: `dlsem --help` stays fast. The names a key chooses from (models, losses, ...) are read
from the registries only when they are printed (docs(catalog.choices())), so no list of names is
kept here. Reading and merging a recipe is config.py's; turning values into their types is
config_values.py's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Key:
    default: Any
    kind: str  # int | float | str | bool | batch | ints | floats | strs ; "?" suffix allows null
    doc: str
    check: Callable[[Any], str | None] | None = None  # returns a complaint or None
    choices: tuple[str, ...] | None = None
    path: bool = False  # a file or folder: stored as an absolute path (the run is evaluated from anywhere)


# Limits on what a recipe can hold: one mistake (a pasted data file, a YAML alias bomb, a runaway
# script) is refused in one line before it costs memory or time.
MAX_FILE_BYTES = 1_000_000  # a recipe is a few KB
MAX_SET_CHARS = 10_000  # one --set item
MAX_TEXT = 4096  # one text value (PATH_MAX on Linux)
MAX_ITEMS = 10_000  # one list value
SEED_MAX = 2**32 - 1  # NumPy's and scikit-learn's seeds are 32-bit; Python's and torch's take more


def _gt0(v):
    return None if v > 0 else "must be > 0"


def _ge0(v):
    return None if v >= 0 else "must be >= 0"


def _ge1(v):
    return None if v >= 1 else "must be >= 1"


def _frac(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _freeze(v):
    ok = v in ("none", "backbone") or (v.isascii() and v.isdigit())
    return None if ok else "must be none, backbone or a number N >= 0 of stages (the first N are frozen)"


def _seed(v):
    return None if 0 <= v <= SEED_MAX else f"must be in 0 .. {SEED_MAX} (2**32 - 1, what NumPy accepts)"


def _name(v):
    """A run name becomes the folder runs/<name>: one plain folder name."""
    if not v.strip():
        return "must not be empty"
    if "/" in v or "\\" in v:
        return "cannot contain a path separator ('/' or '\\'): it names the folder runs/<name> (use out for a path)"
    if v.startswith("."):
        return "cannot start with '.' (no hidden folders, no '..')"
    if any(ord(c) < 32 or ord(c) == 127 for c in v):
        return "cannot contain control characters"
    return None if len(v) <= 100 else "must be at most 100 characters"


def _device(v):
    ok = v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())
    return None if ok else "must be auto, cpu, cuda, cuda:N or mps"


SCHEMA: dict[str, Key] = {
    "name": Key(None, "str?", "run name (a folder name under runs/); default: the config file's stem, or 'default'", _name),
    "task": Key("auto", "str", "what the labels are: auto (from the dataset) or a task"),
    "seed": Key(0, "int", f"seed for data split, weight init, shuffling and dropout (0 .. {SEED_MAX})", _seed),
    "device": Key("auto", "str", "auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps", _device),
    "out": Key(None, "str?", "run directory; default runs/<name>, numbered when taken"),
    # --- model
    "model.name": Key("mlp", "str", "architecture (`dlsem models` describes each)"),
    "model.hidden": Key([128], "ints", "mlp: hidden layer sizes, e.g. [16, 8]", lambda v: None if all(h >= 1 for h in v) else "sizes must be >= 1"),
    "model.activation": Key("auto", "str", "mlp: hidden activation (auto=relu); perceptron: output activation (auto=sigmoid/softmax for classification, identity for regression)",
                            choices=("auto", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout", "identity", "softmax")),
    "model.leaky_slope": Key(0.1, "float", "leaky_relu: slope for x < 0 (the lesson's 0.1)", _ge0),
    "model.elu_alpha": Key(1.0, "float", "elu: alpha in alpha*(exp(x)-1) for x < 0", _gt0),
    "model.maxout_k": Key(2, "int", "maxout: number of linear pieces per unit", lambda v: None if v >= 2 else "must be >= 2"),
    "model.dropout": Key(0.0, "float", "dropout probability after each hidden layer (training only)", _frac),
    "model.batch_norm": Key(False, "bool", "mlp: batch normalisation after each hidden linear layer"),
    "model.widths": Key([8, 16], "ints", "cnn: output channels of each 3x3 conv block (each block ends with a 2x2 pool)", lambda v: None if v and all(h >= 1 for h in v) else "must be a non-empty list of sizes >= 1"),
    "model.pool": Key("max", "str", "cnn: pooling after each conv block", choices=("max", "avg")),
    "model.stem": Key("auto", "str", "image models: imagenet (original first layers) | small (for 8-64 px inputs) | auto (small below 128 px)", choices=("auto", "imagenet", "small")),
    "model.pretrained": Key(False, "bool", "image models: start from torchvision's ImageNet weights (only if already in the local torch hub cache)"),
    "model.aux": Key(True, "bool", "googlenet: train with the two auxiliary classifiers (the lesson's three heads)"),
    "model.init_from": Key(None, "str?", "fine-tuning: start from the weights of a dlseminar checkpoint (RUN/best.pt): every layer whose names and shapes match is loaded, the others (a head for another number of classes) stay as built; a --resume, eval and predict take the weights of their own checkpoint instead",
                           path=True),
    "model.freeze": Key("none", "str", "fine-tuning: none | backbone (every layer but the head: fc, classifier, head or a Sequential's last layer) | N (the first N stages, e.g. resnet's stem, layer1, ..); frozen weights do not train and frozen batch norm keeps its running statistics (eval mode)",
                        _freeze),
    "model.init": Key("default", "str", "weight init: default (PyTorch's / torchvision's own; a classifying perceptron's: zeros) | xavier_uniform | xavier_normal | kaiming_uniform | kaiming_normal | normal | zeros",
                      choices=("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "normal", "zeros")),
    "model.depth": Key(4, "int", "unet: number of 2x2 down/up-sampling levels (inputs are padded to a multiple of 2**depth)", _ge1),
    "model.base_width": Key(16, "int", "unet: channels of the first level (doubled at each level down)", _ge1),
    "model.upsample": Key("transpose", "str", "unet: transpose (learned transposed conv) | bilinear (+ 3x3 conv) | unpool (max-unpool with the encoder's pool indices)",
                          choices=("transpose", "bilinear", "unpool")),
    "model.backbone": Key("cnn", "str", "detectors: feature extractor from the zoo (cnn takes model.widths)"),
    "model.fpn": Key(False, "bool", "detectors: a feature pyramid (FPN) over the backbone's last stages, one anchor size per level"),
    "model.fpn_width": Key(128, "int", "detectors: channels of every FPN level", _ge1),
    "model.anchor_sizes": Key(None, "ints?", "detectors: anchor sizes in px (null: 1/8, 1/4, 1/2 of model.min_size; with FPN: 4 x each level's stride, one per level)",
                              lambda v: None if v and all(a >= 1 for a in v) else "must be a non-empty list of sizes >= 1"),
    "model.aspect_ratios": Key([0.5, 1.0, 2.0], "floats", "detectors: anchor aspect ratios h/w at every position and size",
                               lambda v: None if v and all(a > 0 for a in v) else "must be a non-empty list of numbers > 0"),
    "model.min_size": Key(None, "int?", "detectors: images are resized so their short side is min_size (null: the data's image size)", _ge1),
    "model.max_size": Key(None, "int?", "detectors: ... and their long side at most max_size (null: the data's largest side)", _ge1),
    "model.rpn_batch": Key(128, "int", "detectors: anchors sampled per image to train the RPN (half positive at most)", _ge1),
    "model.proposals": Key([300, 100], "ints", "detectors: RPN proposals kept after NMS per image, in training and in evaluation",
                           lambda v: None if len(v) == 2 and min(v) >= 1 else "must be two counts >= 1 (training, evaluation)"),
    "model.roi_batch": Key(128, "int", "detectors: proposals sampled per image to train the box head (a quarter positive at most)", _ge1),
    "model.head_width": Key(256, "int", "detectors: width of the box head's two fully connected layers", _ge1),
    "model.score_thresh": Key(0.05, "float", "detectors: keep detections scoring above this (evaluation and predict)",
                              lambda v: None if 0 <= v <= 1 else "must be in [0, 1]"),
    "model.nms_iou": Key(0.5, "float", "detectors: non-maximum suppression drops a box overlapping a better one of its class by more than this IoU",
                         lambda v: None if 0 < v <= 1 else "must be in (0, 1]"),
    "model.detections_per_img": Key(100, "int", "detectors: most detections kept per image", _ge1),
    # --- data
    "data.name": Key("digits", "str", "dataset (`dlsem datasets` describes each)"),
    "data.path": Key(None, "str?", "csv: the CSV file; folder: the root folder (one sub-folder per class)", path=True),
    "data.target": Key(None, "str?", "csv: target column (default: the last column)"),
    "data.features": Key(None, "strs?", "csv: feature columns (default: every other column)"),
    "data.n_samples": Key(500, "int", "generated datasets: number of samples", lambda v: None if v >= 10 else "must be >= 10"),
    "data.noise": Key(None, "float?", "synthetic datasets: noise level (null: the dataset's own default)", _ge0),
    "data.image_size": Key(None, "int?", "image datasets: resize to image_size x image_size (null: the dataset's own size; shapes: 32)", _ge1),
    "data.num_classes": Key(None, "int?", "shapes, shapes_seg, shapes_det: how many shape classes (null: 4); seg_folder: classes incl. background (null: from classes.txt or the masks)", _ge1),
    "data.channels": Key(3, "int", "shapes, folder: 1 (grayscale) or 3 (RGB)", _ge1),
    "data.root": Key("data", "str", "folder where downloadable datasets are read from (and downloaded to)", path=True),
    "data.download": Key(False, "bool", "mnist/cifar...: download into data.root when missing (needs the network)"),
    "data.augment": Key([], "strs", "image datasets: random training augmentation, any of hflip, vflip, crop (masks follow the image)"),
    "data.skip_bad": Key(False, "bool", "folder, coco: skip unreadable images (coco: and bad annotations); csv: rows with an empty, non-finite or unknown cell; counted in a note instead of stopping"),
    "data.max_shapes": Key(4, "int", "shapes_seg, shapes_det: most shapes per image (shapes_det draws 0 to max_shapes)", _ge1),
    "data.image_dir": Key(None, "str?", "coco: folder the JSON's file_name entries are relative to (default: the JSON's folder, then its images/)",
                          path=True),
    "data.in_memory": Key("auto", "str", "folder, seg_folder, coco, voc_*: true decodes every image into RAM once; false streams the files, decoded, resized and augmented per batch by data.num_workers processes; auto: in RAM when the decoded set takes at most half the free RAM (a note says which)",
                          choices=("auto", "true", "false")),
    "data.num_workers": Key(2, "int", "streamed images (data.in_memory): worker processes that decode the batches (at most the CPU count; 0: the training process itself)", _ge0),
    "data.val_split": Key(0.2, "float", "fraction of samples held out for validation", lambda v: None if 0 < v < 1 else "must be in (0, 1)"),
    "data.test_split": Key(0.2, "float", "fraction of samples held out for the test", _frac),
    "data.standardize": Key(True, "bool", "scale features, and regression targets, to zero mean / unit variance (fitted on train only; metrics stay in the data's units)"),
    # --- training loop
    "train.epochs": Key(30, "int", "maximum number of epochs", _ge1),
    "train.batch_size": Key(32, "batch", "1 = stochastic GD, N = mini-batch, full = batch GD (one step per epoch)"),
    "train.eval_batch_size": Key(1024, "int", "batch size for validation and test", _ge1),
    "train.on_nan": Key("stop", "str", "a non-finite loss or gradient: stop the run (keeping the last good checkpoint) or skip that step and count it",
                        choices=("stop", "skip")),
    "train.deterministic": Key(False, "bool", "deterministic kernels only (torch.use_deterministic_algorithms; cuDNN benchmark off): bit-identical reruns on GPU too, sometimes slower"),
    "train.unfreeze_at": Key(None, "int?", "fine-tuning: from this epoch on every layer trains (model.freeze holds before it: the head first, then all); null or 0: never", _ge0),
    "train.grad_clip": Key(0.0, "float", "clip the gradient norm to this value (0: off)", _ge0),
    "train.accumulate": Key(1, "int", "gradient accumulation: one optimizer step every N batches (loss / N; the lr schedule counts optimizer steps)", _ge1),
    "train.precision": Key("32", "str", "32 (float32) | bf16 (autocast; CPUs with bf16 instructions, recent GPUs) | 16 (fp16 autocast + GradScaler; for GPUs)",
                           choices=("32", "bf16", "16")),
    "train.channels_last": Key(False, "bool", "image models: NHWC memory layout for weights and conv activations (often faster with bf16/fp16 or on GPUs)"),
    "train.compile": Key(False, "bool", "torch.compile the model for training (slow first steps while it compiles; needs a C++ compiler on CPU)"),
    "train.sync_batchnorm": Key(False, "bool", "multi-process (torchrun) runs: batch-norm statistics over the global batch (SyncBatchNorm; CUDA only)"),
    "train.health": Key(False, "bool", "per epoch: per-layer gradient norms, dead ReLU units, weight histograms, near-zero weights (summary.json health, plots/health.png)"),
    # --- loss
    "loss.name": Key("auto", "str", "auto (the task's default) or a loss that fits the task"),
    "loss.label_smoothing": Key(0.0, "float", "label smoothing", _frac),
    "loss.class_weights": Key([], "floats", "one weight per class (e.g. rare classes up), empty: all 1",
                              lambda v: None if all(w >= 0 for w in v) else "weights must be >= 0"),
    "loss.huber_delta": Key(1.0, "float", "where the loss turns from quadratic to linear", _gt0),
    "loss.aux_weight": Key(0.3, "float", "weight of auxiliary-head losses (googlenet) added during training", _ge0),
    "loss.l1": Key(0.0, "float", "lambda of the L1 penalty lambda*sum|W| added to the loss (biases excluded)", _ge0),
    "loss.l2": Key(0.0, "float", "lambda of the L2 penalty lambda*sum W^2 added to the loss (biases excluded)", _ge0),
    # --- optimizer
    "optim.name": Key("adam", "str", "optimizer"),
    "optim.lr": Key(0.001, "float", "learning rate (alpha in W <- W - alpha*dH/dW)", _gt0),
    "optim.momentum": Key(0.9, "float", "momentum factor", _frac),
    "optim.betas": Key([0.9, 0.999], "floats", "(beta1, beta2): decay of the running mean of gradients and of their squares", lambda v: None if len(v) == 2 and all(0 <= b < 1 for b in v) else "must be two numbers in [0, 1)"),
    "optim.alpha": Key(0.99, "float", "smoothing constant of the squared-gradient average", _frac),
    "optim.eps": Key(1e-8, "float", "term added to denominators for numerical stability", _gt0),
    "optim.weight_decay": Key(0.0, "float", "weight decay applied by the optimizer", _ge0),
    "optim.backbone_lr_mult": Key(1.0, "float", "fine-tuning: every layer but the head learns at optim.lr times this (two parameter groups; the lr schedule keeps the ratio)", _gt0),
    # --- learning-rate schedule
    "sched.name": Key("none", "str", "learning-rate schedule"),
    "sched.warmup_epochs": Key(0.0, "float", "linear warm-up from 0 to lr over this many epochs", _ge0),
    "sched.step_size": Key(10, "int", "multiply the lr by gamma every step_size epochs", _ge1),
    "sched.gamma": Key(0.1, "float", "lr factor every step_size epochs", _gt0),
    "sched.factor": Key(0.1, "float", "lr factor when the monitor stalls", lambda v: None if 0 < v < 1 else "must be in (0, 1)"),
    "sched.patience": Key(5, "int", "epochs without improvement before reducing the lr", _ge0),
    "sched.min_lr": Key(0.0, "float", "lowest lr", _ge0),
    "sched.pct_start": Key(0.3, "float", "fraction of training spent increasing the lr", lambda v: None if 0 < v < 1 else "must be in (0, 1)"),
    # --- early stopping
    "early_stop.patience": Key(10, "int", "stop after this many epochs without improvement (0: off)", _ge0),
    "early_stop.monitor": Key("auto", "str", "metric to watch, e.g. val/acc or val/loss (auto: the task's)"),
    "early_stop.mode": Key("auto", "str", "max | min | auto (from the monitor)", choices=("auto", "min", "max")),
    "early_stop.min_delta": Key(0.0, "float", "smallest change that counts as an improvement", _ge0),
    "early_stop.restore_best": Key(True, "bool", "end the run with the best epoch's weights"),
    # --- checkpoints and logs
    "checkpoint.min_interval_s": Key(2.0, "float", "write last.pt/best.pt at epoch ends at most this often (always at the end or on interrupt)", _ge0),
    "checkpoint.every_n_steps": Key(0, "int", "also write last.pt every N optimizer steps, mid-epoch (0: at epoch ends only); a resume continues after that step", _ge0),
    "checkpoint.max_overhead": Key(0.02, "float", "also space epoch-end writes so that writing takes at most this share of the run's time (0: no limit)", _frac),
    "logging.every_epochs": Key(0, "int", "print a line every N epochs when not on a terminal (0: about 25 lines a run)", _ge0),
    "logging.plots": Key(True, "bool", "write plots/*.png at the end of the run"),
    "logging.boundary_gif": Key(True, "bool", "2-D classification: also plots/decision_boundary.gif, the boundary epoch by epoch (needs logging.plots)"),
    "logging.tensorboard": Key(False, "bool", "write TensorBoard event files to RUN/tensorboard (per-step loss and lr, epoch metrics, plots, hyper-parameters)"),
    "logging.steps": Key(False, "bool", "write RUN/steps.csv, the training loss of every optimizer step (step, epoch, train/loss), drawn as plots/steps.png: SGD's noise the per-epoch curves average away"),
}

SECTIONS = sorted({k.split(".")[0] for k in SCHEMA if "." in k})

# Named CLI options -> config keys (named options win over --set and the file).
CLI_KEYS = {
    "model": "model.name", "data": "data.name", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "lr": "optim.lr", "optimizer": "optim.name",
    "loss": "loss.name", "dropout": "model.dropout", "weight_decay": "optim.weight_decay",
    "patience": "early_stop.patience", "device": "device", "seed": "seed", "out": "out",
    "pretrained": "model.pretrained", "init_from": "model.init_from",
}


def docs(names: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Every key's one-line meaning; a key that names a registered component ends with the names
    it takes (`names`: catalog.choices(), read from the registries by the caller, since the modules
    that register import this one)."""
    names = names or {}
    users = _taken_by() if names else {}  # names given: the registries are loaded
    out = {}
    for k, s in SCHEMA.items():
        out[k] = s.doc + (f"; one of: {', '.join(names[k])}" if k in names else "") \
            + (f"; taken by: {', '.join(users[k])}" if k in users else "")
    return out


def _taken_by() -> dict[str, list[str]]:
    """loss.*, optim.* and sched.* key -> the registered losses / optimizers / schedules whose builder
    takes it, from their signatures; a key every one of them takes (optim.lr) or none (loss.l1) is
    left out. (A model.* key is read by too many architectures to list: its doc names them.)"""
    import inspect

    from .registry import LOSSES, OPTIMIZERS, SCHEDULES

    out: dict[str, list[str]] = {}
    for reg in (LOSSES, OPTIMIZERS, SCHEDULES):
        section = reg.key.split(".")[0]
        takers: dict[str, list[str]] = {}
        for e in reg.entries():
            for p in inspect.signature(e.fn).parameters.values():
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    takers.setdefault(f"{section}.{p.name}", []).append(e.name)
        out.update({k: v for k, v in takers.items() if k in SCHEMA and len(v) < len(reg.names())})
    return out
