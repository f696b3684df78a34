"""Unit tests for dlseminar.config: defaults <- YAML file <- --set <- named options."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dlseminar import config
from dlseminar.config import SCHEMA, Config, parse_set, resolve
from dlseminar.config_schema import CLI_KEYS, SECTIONS
from dlseminar.config_values import validate
from dlseminar.errors import ConfigError, UserError

HYP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write(tmp_path, text, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# --------------------------------------------------------------------------- defaults, file, --set, named


def test_defaults_resolve_to_schema_defaults():
    cfg = resolve()
    for key, spec in SCHEMA.items():
        if key == "name":
            continue
        assert cfg[key] == spec.default, key
    assert cfg["name"] == "default"
    assert cfg.source is None
    assert cfg.explicit == frozenset()


def test_attribute_and_section_access():
    cfg = resolve()
    assert cfg.optim.lr == cfg["optim.lr"] == 0.001
    assert cfg.seed == 0
    assert cfg.section("optim")["name"] == "adam"
    assert set(cfg.section("sched")) == {k.split(".", 1)[1] for k in SCHEMA if k.startswith("sched.")}
    with pytest.raises(AttributeError):
        cfg.optim.nope
    with pytest.raises(AttributeError):
        cfg.nope


def test_yaml_file_overrides_defaults_and_names_the_run(tmp_path):
    p = write(tmp_path, "optim:\n  lr: 0.05\n  name: sgd\nmodel:\n  hidden: [4, 3]\nseed: 7\n", "lesson.yaml")
    cfg = resolve(p)
    assert cfg["optim.lr"] == 0.05
    assert cfg["optim.name"] == "sgd"
    assert cfg["model.hidden"] == [4, 3]
    assert cfg["seed"] == 7
    assert cfg["train.epochs"] == SCHEMA["train.epochs"].default  # untouched
    assert cfg["name"] == "lesson"
    assert cfg.source == str(p)
    assert {"optim.lr", "optim.name", "model.hidden", "seed"} <= cfg.explicit
    assert "train.epochs" not in cfg.explicit


def test_yaml_file_accepts_dotted_top_level_keys(tmp_path):
    cfg = resolve(write(tmp_path, "optim.lr: 0.2\n"))
    assert cfg["optim.lr"] == 0.2


def test_empty_yaml_file_is_defaults(tmp_path):
    cfg = resolve(write(tmp_path, ""))
    assert cfg["optim.lr"] == SCHEMA["optim.lr"].default


@pytest.mark.parametrize(
    "item, key, value",
    [
        ("optim.lr=0.01", "optim.lr", 0.01),
        ("optim.lr=1e-3", "optim.lr", 0.001),  # YAML 1.1 reads 1e-3 as a string; coercion fixes it
        ("model.hidden=[16,8]", "model.hidden", [16, 8]),
        ("model.hidden=16,8", "model.hidden", [16, 8]),
        ("model.hidden=32", "model.hidden", [32]),
        ("train.batch_size=full", "train.batch_size", "full"),
        ("train.batch_size=FULL", "train.batch_size", "full"),
        ("train.batch_size=1", "train.batch_size", 1),
        ("train.epochs=5", "train.epochs", 5),
        ("train.epochs=5.0", "train.epochs", 5),
        ("model.batch_norm=true", "model.batch_norm", True),
        ("model.batch_norm=off", "model.batch_norm", False),
        ("optim.betas=[0.8, 0.9]", "optim.betas", [0.8, 0.9]),
        ("data.features=[a, b]", "data.features", ["a", "b"]),
        ("data.noise=null", "data.noise", None),
        ("data.noise=", "data.noise", None),
        ("out=runs/x=y", "out", "runs/x=y"),  # only the first '=' splits
        (" optim.lr =0.5", "optim.lr", 0.5),
    ],
)
def test_set_parsing(item, key, value):
    cfg = resolve(sets=[item])
    assert cfg[key] == value
    assert type(cfg[key]) is type(value)
    assert key in cfg.explicit


def test_parse_set_requires_equals():
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_set("optim.lr")


def test_precedence_named_over_set_over_file(tmp_path):
    p = write(tmp_path, "optim:\n  lr: 0.1\ntrain:\n  epochs: 3\n  batch_size: 4\nseed: 1\n")
    cfg = resolve(p, sets=["optim.lr=0.2", "train.epochs=4"], named={"lr": 0.3, "seed": None, "batch_size": "full"})
    assert cfg["optim.lr"] == 0.3  # named wins over --set and file
    assert cfg["train.epochs"] == 4  # --set wins over the file
    assert cfg["train.batch_size"] == "full"  # named wins over the file
    assert cfg["seed"] == 1  # a named option left as None does not override
    # later --set wins over an earlier one
    assert resolve(sets=["optim.lr=0.2", "optim.lr=0.4"])["optim.lr"] == 0.4


def test_all_cli_keys_exist_in_schema():
    for opt, key in CLI_KEYS.items():
        assert key in SCHEMA, opt


def test_section_shorthand(tmp_path):
    cfg = resolve(write(tmp_path, "model: perceptron\ndata: iris\noptim: sgd\n"))
    assert cfg["model.name"] == "perceptron"
    assert cfg["data.name"] == "iris"
    assert cfg["optim.name"] == "sgd"


# --------------------------------------------------------------------------- errors


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError) as e:
        resolve(sets=["optim.lrr=0.1"])
    assert "did you mean 'optim.lr'" in str(e.value)
    assert "optim.lrr" in str(e.value)


def test_unknown_key_in_file_names_the_file(tmp_path):
    p = write(tmp_path, "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        resolve(p)
    assert "did you mean 'optim.lr'" in str(e.value)
    assert str(p) in str(e.value)


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("train.epochs=abc", "train.epochs must be an integer"),
        ("train.epochs=1.5", "train.epochs must be an integer"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("train.epochs=true", "train.epochs must be an integer"),
        ("optim.lr=-0.1", "optim.lr must be > 0"),
        ("optim.lr=0", "optim.lr must be > 0"),
        ("optim.lr=abc", "optim.lr must be a number"),
        ("optim.lr=.inf", "optim.lr must be a finite number"),
        ("optim.lr=.nan", "optim.lr must be a finite number"),
        ("optim.lr=true", "optim.lr must be a number"),
        ("optim.lr=[0.1]", "optim.lr must be a number"),
        ("train.batch_size=0", "train.batch_size must be >= 1 or 'full'"),
        ("train.batch_size=-3", "train.batch_size must be >= 1 or 'full'"),
        ("train.batch_size=half", "train.batch_size must be a positive integer or 'full'"),
        ("model.dropout=1.5", "model.dropout must be in [0, 1)"),
        ("model.dropout=1", "model.dropout must be in [0, 1)"),
        ("model.hidden=[16,0]", "model.hidden sizes must be >= 1"),
        ("model.hidden=[a]", "model.hidden must be a list of integers"),
        ("model.activation=relux", "did you mean 'relu'"),
        ("model.init=zero", "did you mean 'zeros'"),
        ("model.batch_norm=maybe", "model.batch_norm must be true or false"),
        ("optim.betas=[0.9]", "optim.betas must be two numbers in [0, 1)"),
        ("optim.betas=[0.9, 1.0]", "optim.betas must be two numbers in [0, 1)"),
        ("data.val_split=0", "data.val_split must be in (0, 1)"),
        ("data.n_samples=5", "data.n_samples must be >= 10"),
        ("device=gpu", "device must be auto, cpu, cuda, cuda:N or mps"),
        ("device=cuda:x", "device must be auto"),
        ("model.name=", "model.name must be set"),
        ("model.name=[a, b]", "model.name must be a single value"),
        ("early_stop.mode=up", "early_stop.mode must be one of"),
    ],
)
def test_bad_values_raise_config_error(item, fragment):
    with pytest.raises(ConfigError) as e:
        resolve(sets=[item])
    assert fragment in str(e.value)


def test_good_device_values():
    for d in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert resolve(sets=[f"device={d}"])["device"] == d


def test_named_option_is_validated():
    with pytest.raises(ConfigError, match="must be >= 1"):
        resolve(named={"epochs": 0})
    with pytest.raises(ConfigError, match="must be in"):
        resolve(named={"dropout": 1.5})


def test_malformed_yaml_names_the_line(tmp_path):
    p = write(tmp_path, "optim:\n  lr: 0.1\nmodel: [1, 2\nseed: 3\n")
    with pytest.raises(ConfigError) as e:
        resolve(p)
    msg = str(e.value)
    assert "not valid YAML" in msg
    assert str(p) in msg
    assert "line 4" in msg  # where PyYAML notices the unclosed flow sequence


def test_malformed_yaml_tab_indentation(tmp_path):
    p = write(tmp_path, "optim:\n\tlr: 0.1\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line 2"):
        resolve(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve(tmp_path / "nope.yaml")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        resolve(tmp_path)


def test_non_utf8_file(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ConfigError):
        resolve(p)


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("42\n", "int"), ("just words\n", "str")])
def test_top_level_must_be_mapping(tmp_path, text, kind):
    with pytest.raises(ConfigError) as e:
        resolve(write(tmp_path, text))
    assert "must be a mapping" in str(e.value)
    assert kind in str(e.value)


def test_config_error_is_a_user_error_with_exit_code_2():
    assert issubclass(ConfigError, UserError)
    assert ConfigError.exit_code == 2


# --------------------------------------------------------------------------- Config object


def test_config_is_read_only():
    cfg = resolve()
    with pytest.raises(AttributeError, match="read-only"):
        cfg.seed = 3
    with pytest.raises(AttributeError):
        cfg.optim = None
    with pytest.raises(TypeError):
        cfg["seed"] = 3  # no __setitem__
    # returned values are copies: mutating them does not change the config
    cfg["model.hidden"].append(999)
    cfg.section("model")["hidden"].append(999)
    cfg.to_dict()["model"]["hidden"].append(999)
    cfg.model.hidden.append(999)
    assert cfg["model.hidden"] == [128]


def test_replace_returns_new_validated_config():
    cfg = resolve()
    new = cfg.replace(optim__lr=0.5, seed=4)
    assert new["optim.lr"] == 0.5 and new["seed"] == 4
    assert cfg["optim.lr"] == 0.001
    assert {"optim.lr", "seed"} <= new.explicit
    with pytest.raises(ConfigError):
        cfg.replace(optim__lr=-1)


def test_to_dict_round_trips_through_base(tmp_path):
    p = write(tmp_path, "model:\n  name: perceptron\n  hidden: [5, 6]\noptim:\n  lr: 0.25\n  betas: [0.5, 0.6]\n")
    cfg = resolve(p, sets=["train.batch_size=full", "data.features=[a, b]", "data.noise=0.3"])
    d = cfg.to_dict()
    assert d["optim"]["lr"] == 0.25 and d["model"]["hidden"] == [5, 6] and d["name"] == "cfg"
    again = resolve(base=d)
    assert again.to_dict() == d
    for k in SCHEMA:
        assert again[k] == cfg[k], k
    # to_dict is YAML-safe (what config.yaml stores) and survives a YAML round trip too
    text = yaml.safe_dump(d)
    assert resolve(write(tmp_path, text, "saved.yaml")).to_dict() == d
    # explicit from base: keys that differ from the defaults
    assert {"optim.lr", "model.name", "train.batch_size"} <= again.explicit
    assert "train.epochs" not in again.explicit


def test_base_with_unknown_key_raises():
    with pytest.raises(ConfigError, match="checkpoint"):
        resolve(base={"optim": {"lrr": 0.1}})


def test_describe_lists_every_key_in_schema_order():
    rows = config.describe(resolve())
    assert [r[0] for r in rows] == list(SCHEMA)
    assert all(isinstance(r[2], str) and r[2] for r in rows)


def test_schema_defaults_validate():
    # every default must itself pass its own type and check
    out = validate({k: s.default for k, s in SCHEMA.items() if k != "name"} | {"name": "x"})
    for k, s in SCHEMA.items():
        if k != "name":
            assert out[k] == s.default


# --------------------------------------------------------------------------- property tests


@HYP
@given(lr=st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False))
def test_any_positive_lr_round_trips_exactly_through_set(lr):
    cfg = resolve(sets=[f"optim.lr={lr!r}"])
    assert cfg["optim.lr"] == lr
    assert isinstance(cfg["optim.lr"], float)


@HYP
@given(lr=st.floats(max_value=0, allow_nan=False, allow_infinity=False))
def test_any_non_positive_lr_is_rejected(lr):
    with pytest.raises(ConfigError):
        resolve(sets=[f"optim.lr={lr!r}"])


@HYP
@given(hidden=st.lists(st.integers(min_value=1, max_value=10_000), max_size=6))
def test_hidden_lists_round_trip(hidden):
    assert resolve(sets=[f"model.hidden={hidden}"])["model.hidden"] == hidden


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@HYP
@given(key=_TEXT)
def test_unknown_set_key_raises_config_error_only(key):
    parsed = key.split("=", 1)[0].strip()
    if parsed in SCHEMA:
        return
    with pytest.raises(ConfigError) as e:
        resolve(sets=[f"{key}=1"])
    assert ("has no key before '='" if not parsed else "unknown config key") in str(e.value)


@HYP
@given(key=_TEXT)
def test_unknown_file_key_raises_config_error_only(tmp_path, key):
    if key in SCHEMA or key in SECTIONS:
        return
    p = tmp_path / "k.yaml"
    p.write_text(yaml.safe_dump({key: 1}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError):
        resolve(p)


# Python values as they can arrive from a YAML file / checkpoint (ints kept to 64 bits;
# the overflow of larger ones is tested below).
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    _TEXT,
    st.lists(st.one_of(st.integers(-100, 100), st.floats(allow_nan=False), _TEXT), max_size=3),
    st.dictionaries(_TEXT, st.integers(), max_size=2),
)


@HYP
@given(key=st.sampled_from(sorted(SCHEMA)), value=_SCALARS)
def test_any_value_for_any_key_validates_or_raises_config_error(key, value):
    try:
        cfg = resolve(base={key: value} if "." not in key else {key.split(".")[0]: {key.split(".", 1)[1]: value}})
    except ConfigError:
        return
    v = cfg[key]
    kind = SCHEMA[key].kind.rstrip("?")
    if v is None:
        assert SCHEMA[key].kind.endswith("?") or key == "name"
    elif kind == "float":
        assert isinstance(v, float) and math.isfinite(v)
    elif kind == "int":
        assert isinstance(v, int) and not isinstance(v, bool)
    elif kind == "bool":
        assert isinstance(v, bool)
    elif kind == "str":
        assert isinstance(v, str)
    elif kind == "batch":
        assert v == "full" or (isinstance(v, int) and v >= 1)
    else:
        assert isinstance(v, list)


# Raw --set text: every YAML scalar form, including timestamps and huge integers.
_RAW = st.one_of(
    _TEXT.filter(lambda s: "\n" not in s and "\r" not in s),
    st.from_regex(r"\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}\Z"),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["~", "null", "yes", "no", ".inf", "-.inf", ".nan", "0x1F", "0o17", "1:30", "[1, 2]", "{a: 1}",
                     "!!binary aGk=", "!!python/object:os.system x", "&a 1", "*a", "[", "'", "2001-12-14t21:59:43.10-05:00"]),
)


@HYP
@example(key="seed", raw="2001-13-45")
@example(key="optim.lr", raw="1" + "0" * 400)
@given(key=st.sampled_from(sorted(SCHEMA)), raw=_RAW)
def test_any_set_text_for_any_key_validates_or_raises_config_error(key, raw):
    try:
        resolve(sets=[f"{key}={raw}"])
    except ConfigError:
        pass


def test_set_invalid_date_value_is_config_error():
    with pytest.raises(ConfigError):
        resolve(sets=["seed=2001-13-45"])


def test_file_invalid_date_value_is_config_error(tmp_path):
    with pytest.raises(ConfigError):
        resolve(write(tmp_path, "seed: 2001-13-45\n"))


@pytest.mark.parametrize("item", ["optim.lr=1" + "0" * 400, "optim.betas=[0.9, 1" + "0" * 400 + "]"])
def test_huge_integer_for_float_key_is_config_error(item):
    with pytest.raises(ConfigError):
        resolve(sets=[item])


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_in_configs_resolves(path):
    """A typo in a shipped recipe would be a user's first error: each one must pass the schema."""
    from dlseminar.catalog import load_all
    from dlseminar.registry import DATASETS, MODELS

    load_all()
    cfg = resolve(path)
    assert cfg["name"] == path.stem
    assert cfg["model.name"] in MODELS.names() and cfg["data.name"] in DATASETS.names()
