"""dlseminar/memory.py and footprint.py: the free-memory reader, the step estimate against a real step, the refusals
(with the free memory patched small), the slow-step note, and that the checks are cheap and leave the
run's random streams alone. Also the many-class confusion plot (plots.confusion) and its block choice."""
from __future__ import annotations

import random
import statistics
import time

import numpy as np
import pytest
import torch

from dlseminar import assemble, footprint, memory
from dlseminar.config import resolve
from dlseminar.errors import ConfigError


def setup_of(*sets):
    cfg = resolve(None, list(sets), {})
    return cfg, assemble.build(cfg)


def test_ram_available_is_at_most_meminfo():
    free = memory.ram_available()
    assert free is not None and free > 0
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    assert free <= avail * 1.05  # a cgroup limit can only lower it (the 5%: memory moves between the reads)


@pytest.mark.parametrize("name,values", [("sgd", 0), ("momentum", 1), ("nesterov", 1), ("rmsprop", 1),
                                         ("adam", 2), ("adamw", 2), ("adagrad", 1)])
def test_optimizer_state_is_counted_by_trying_it(name, values):
    assert footprint.optimizer_values_per_weight(resolve(None, [f"optim.name={name}"], {})) == values


def test_forward_pass_counts_flops_and_saved_activations_of_a_linear_layer():
    model = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 5))
    p = footprint.forward_pass(model, (20,), 64)
    assert p.flops == 2 * 64 * (20 * 30 + 30 * 5)
    # saved for backward: the input (64x20), the ReLU's output (64x30) once though two ops keep it
    assert p.saved == 4 * 64 * (20 + 30)


def test_forward_pass_touches_no_real_weight_or_buffer():
    cfg, s = setup_of("data.name=shapes", "data.n_samples=40", "data.image_size=16", "model.name=resnet18")
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    s.model.eval()
    assert footprint.forward_pass(s.model, (3, 16, 16), 8) is not None
    assert not s.model.training  # mode restored
    after = s.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch-norm running stats untouched


def _saved_for_real(model, x) -> int:
    """Bytes autograd keeps in a real forward pass (each storage once, parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            kept[st.data_ptr()] = st.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(kept.values())


@pytest.mark.parametrize("name", ["cnn", "vgg11", "resnet18"])
def test_meta_estimate_of_activations_matches_a_real_forward(name):
    cfg, s = setup_of("data.name=shapes", "data.n_samples=40", "data.image_size=16", f"model.name={name}")
    est = footprint.forward_pass(s.model, (3, 16, 16), 16).saved
    real = _saved_for_real(s.model, torch.randn(16, 3, 16, 16))
    assert 0.9 * real <= est <= 1.1 * real, (est, real)


def test_a_detector_is_estimated_without_activations():
    cfg, s = setup_of("data.name=shapes_det", "data.n_samples=12", "data.image_size=32", "model.name=rcnn_cnn",
                      "train.batch_size=4")
    step = footprint.estimate_step(cfg, s)
    assert step.parts["activations"] == 0 and step.flops is None and step.parts["gradients and adam's state"] > 0


def test_step_estimate_parts():
    cfg, s = setup_of("data.name=digits", "model.name=mlp", "train.batch_size=full", "optim.name=adam")
    step = footprint.estimate_step(cfg, s)
    weights = sum(p.numel() * 4 for p in s.model.parameters())
    assert step.parts["gradients and adam's state"] == 3 * weights  # gradient + two moments
    assert step.parts["the dataset"] == 0  # on the CPU the data is in RAM already; full batch: no shuffled copy
    assert step.full and step.steps == 1 and "(1,079 samples)" in step.what


def test_check_step_refuses_a_step_that_cannot_fit(monkeypatch):
    cfg, s = setup_of("data.name=shapes", "data.n_samples=100", "data.image_size=64", "model.name=vgg11",
                      "train.batch_size=full", "device=cpu")
    monkeypatch.setattr(memory, "ram_available", lambda: 50_000_000)
    with pytest.raises(ConfigError) as e:
        memory.check_step(cfg, s)
    msg = str(e.value)
    assert msg.startswith("one training step of vgg11 with batch_size full (60 samples of 3x64x64) needs about ")
    assert "in RAM (activations " in msg and "50 MB are free: use a smaller train.batch_size or data.image_size" in msg


def test_check_model_refuses_weights_that_cannot_fit_before_building():
    cfg = resolve(None, ["data.name=moons", "model.hidden=[300000,300000]"], {})
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"model mlp has 90,001,\d{3},\d{3} parameters: its weights alone need about 360.0 GB"):
        memory.check_model(cfg, (2,), 2, "scores", torch.device("cpu"))
    assert time.perf_counter() - t0 < 1.0  # built on the meta device: nothing allocated


def test_check_dataset_refuses_before_generating():
    cfg = resolve(None, ["data.name=shapes", "data.n_samples=1000000000"], {})
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"dataset 'shapes' with 1,000,000,000 samples needs at least 7.7 TB in RAM .*\(3.1 KB a sample\)"):
        memory.check_dataset(cfg)
    assert time.perf_counter() - t0 < 1.0


def test_check_dataset_scales_the_probe_by_image_area():
    cfg = resolve(None, ["data.name=shapes", "data.n_samples=500", "data.image_size=100000"], {})
    with pytest.raises(ConfigError, match=r"500 samples of 100000x100000 pixels needs at least 38 TB .*\(30.1 GB a sample\)"):
        memory.check_dataset(cfg)


def test_checks_leave_the_random_streams_alone():
    cfg, s = setup_of("data.name=shapes", "data.n_samples=40", "data.image_size=16", "model.name=cnn",
                      "model.dropout=0.5")
    states = torch.random.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate()
    memory.check_dataset(cfg)
    memory.check_model(cfg, (3, 16, 16), s.task.num_outputs, s.task.output_kind, s.device)
    memory.check_step(cfg, s)
    assert torch.equal(states[0], torch.random.get_rng_state())
    assert (states[1] == np.random.get_state()[1]).all() and states[2] == random.getstate()


def test_checks_are_cheap_for_a_small_tabular_run():
    cfg, s = setup_of("data.name=moons", "model.name=mlp")
    info = s.data.info

    def all_checks():
        t0 = time.perf_counter()
        memory.check_dataset(cfg)
        memory.check_model(cfg, info.in_shape, s.task.num_outputs, s.task.output_kind, s.device)
        memory.check_step(cfg, s)
        return time.perf_counter() - t0

    all_checks()  # the first call imports and warms the meta kernels
    assert statistics.median(all_checks() for _ in range(5)) < 0.05


def test_slow_step_note(capsys):
    step = footprint.Step("one training step of vgg16 with batch_size full (1,437 samples of 3x224x224)",
                          {"activations": 1.0}, {"activations": ""}, torch.device("cpu"), 2e15, True, 1)
    memory._note_slow(step)
    err = capsys.readouterr().err
    assert err.startswith("note: one training step of vgg16 with batch_size full") and "PFLOP" in err
    assert "per epoch or more on this cpu" in err
    memory._note_slow(footprint.Step("small", {}, {}, torch.device("cpu"), 1e9, True, 1))
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- many-class plots

def test_most_confused_takes_the_largest_off_diagonal_pairs():
    from dlseminar.tasks.classification.plots import most_confused

    true_c, pred_c = np.array([0, 3, 5, 9, 8]), np.array([0, 7, 5, 2, 1])
    counts = np.array([50, 9, 40, 4, 1])  # the diagonal (0->0, 5->5) never counts
    assert most_confused(true_c, pred_c, counts, 4) == [2, 3, 7, 9]
    assert most_confused(true_c, pred_c, counts, 3) == [3, 7, 9]


@pytest.mark.parametrize("k,size", [(10, (620, 600)), (300, (1500, 720)), (3000, (1500, 720))])
def test_confusion_figure_size_is_capped(tmp_path, k, size):
    from PIL import Image

    from dlseminar.tasks.classification import plots

    g = torch.Generator().manual_seed(0)
    y = torch.arange(10 * k) % k
    pred = torch.where(torch.rand(len(y), generator=g) < 0.8, y, torch.randint(0, k, (len(y),), generator=g))
    t0 = time.perf_counter()
    plots.confusion(tmp_path / "c.png", y, pred, [f"c{i}" for i in range(k)], "test")
    assert time.perf_counter() - t0 < 10
    with Image.open(tmp_path / "c.png") as im:
        assert im.size == size
