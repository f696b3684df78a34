"""Unit tests for dlseminar.registry."""
from __future__ import annotations

import pytest

from dlseminar import catalog, config, registry
from dlseminar.errors import ConfigError
from dlseminar.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULES, TASKS, Registry, suggest

catalog.load_all()
ALL = {"model": MODELS, "dataset": DATASETS, "loss": LOSSES, "optimizer": OPTIMIZERS, "task": TASKS,
       "lr schedule": SCHEDULES}


def test_duplicate_registration_raises():
    r = Registry("thing", "thing.name")

    @r.register("a")
    def a():
        """A."""

    with pytest.raises(ValueError, match="registered twice"):
        @r.register("a")
        def a2():
            """Another A."""

    assert r.get("a").fn is a  # the first one stays


def test_register_defaults_to_function_name_and_keeps_meta():
    r = Registry("thing", "thing.name")

    @r.register(wants="x")
    def banana():
        """Yellow.

        More text.
        """

    e = r.get("banana")
    assert e.name == "banana" and e.meta == {"wants": "x"}
    assert e.doc == "Yellow."
    assert "banana" in r and "apple" not in r


def test_unknown_name_raises_config_error_with_suggestion():
    r = Registry("model", "model.name")
    for n in ("resnet", "mlp", "perceptron"):
        r.register(n)(lambda: None)
    with pytest.raises(ConfigError) as e:
        r.get("percepton")
    msg = str(e.value)
    assert "unknown model 'percepton' for model.name" in msg
    assert "did you mean 'perceptron'?" in msg
    assert "choose from: mlp, perceptron, resnet" in msg
    with pytest.raises(ConfigError) as e:
        r.get("zzzzzz")
    assert "did you mean" not in str(e.value)


def test_real_registry_suggests():
    with pytest.raises(ConfigError, match="did you mean 'mlp'"):
        MODELS.get("mpl")
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        OPTIMIZERS.get("adan")
    with pytest.raises(ConfigError, match="did you mean 'moons'"):
        DATASETS.get("moon")


def test_names_sorted():
    r = Registry("x", "x.name")
    for n in ("c", "a", "b"):
        r.register(n)(lambda: None)
    assert r.names() == ["a", "b", "c"]
    assert [e.name for e in r.entries()] == ["a", "b", "c"]
    for reg in ALL.values():
        assert reg.names() == sorted(reg.names())


def test_suggest_empty_when_nothing_close():
    assert suggest("xyz", ["alpha", "beta"]) == ""
    assert suggest("alpah", ["alpha", "beta"]) == " (did you mean 'alpha'?)"


def test_expected_components_registered():
    assert {"mlp", "perceptron"} <= set(MODELS.names())
    assert {"xor", "linear", "moons", "circles", "spirals", "plane", "fish", "digits", "iris", "wine",
            "breast_cancer", "diabetes", "csv"} <= set(DATASETS.names())
    assert set(LOSSES.names()) >= {"ce", "nll", "bce", "mse", "mae", "huber"}
    assert set(OPTIMIZERS.names()) >= {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad"}
    assert set(TASKS.names()) == {"classification", "regression", "segmentation", "detection"}
    assert set(SCHEDULES.names()) >= {"none", "step", "cosine", "plateau", "onecycle"}


@pytest.mark.parametrize("kind, name", [(k, n) for k, r in ALL.items() for n in r.names()])
def test_every_entry_has_a_one_line_doc(kind, name):
    doc = ALL[kind].get(name).doc
    assert doc.strip(), f"{kind} {name!r} has no docstring"
    assert "\n" not in doc


def test_every_loss_declares_a_known_form():
    forms = {"index_logits", "index_logprobs", "target_logits", "target_values", "pixel_logits"}
    for e in LOSSES.entries():
        assert e.meta.get("wants") in forms, e.name


def test_registry_defaults_in_schema_are_registered():
    assert config.SCHEMA["model.name"].default in MODELS
    assert config.SCHEMA["data.name"].default in DATASETS
    assert config.SCHEMA["optim.name"].default in OPTIMIZERS
    assert config.SCHEMA["sched.name"].default in SCHEDULES


def test_call_builder_passes_section_keys_and_notes_ignored(capsys):
    r = Registry("thing", "model.name")
    seen = {}

    @r.register("t")
    def t(in_shape, hidden=(1,), dropout=0.0):
        """T."""
        seen.update(in_shape=in_shape, hidden=hidden, dropout=dropout)
        return "built"

    cfg = config.resolve(sets=["model.hidden=[3]", "model.leaky_slope=0.3"])
    assert registry.call_builder(r.get("t"), cfg, "model", in_shape=(2,)) == "built"
    assert seen == {"in_shape": (2,), "hidden": [3], "dropout": 0.0}
    err = capsys.readouterr().err
    assert "model.leaky_slope is ignored by 't'" in err
    assert "model.hidden" not in err
