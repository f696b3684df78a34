"""A run imports only what it uses: no torchvision for a model that does not need it, no matplotlib
until a plot is drawn (benchmarks/startup.py times what this saves). Each check runs in a fresh
interpreter, since this test process has imported everything already."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import CONFIGS

HEAVY = ("torchvision", "matplotlib", "PIL", "sklearn")


def _loaded_after(code: str, cwd) -> list[str]:
    """Run `code` in a fresh interpreter; the HEAVY packages in its sys.modules at the end."""
    probe = f"\nimport json, sys\nprint(json.dumps([h for h in {HEAVY!r} if h in sys.modules]))"
    r = subprocess.run([sys.executable, "-c", code + probe], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _train(*args: str) -> str:
    """Code that runs `dlsem train ARGS` in-process, as `python -m dlseminar` would."""
    argv = ["dlsem", "train", *args, "--epochs", "1", "--device", "cpu", "--out", "run", "--overwrite"]
    return ("import sys\nfrom dlseminar.cli import main\n"
            f"sys.argv = {argv!r}\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n")


def test_a_tabular_run_without_plots_imports_neither_torchvision_nor_matplotlib(tmp_path):
    loaded = _loaded_after(_train(str(CONFIGS / "digits_mlp.yaml"), "--set", "logging.plots=false"), tmp_path)
    assert (tmp_path / "run" / "summary.json").is_file() and (tmp_path / "run" / "best.pt").is_file()
    assert "sklearn" in loaded  # the digits come from scikit-learn: the probe sees what the run imported
    assert not {"torchvision", "matplotlib", "PIL"} & set(loaded), loaded


def test_matplotlib_loads_when_the_plots_are_drawn_and_torchvision_still_does_not(tmp_path):
    loaded = _loaded_after(_train(str(CONFIGS / "digits_mlp.yaml")), tmp_path)
    assert (tmp_path / "run" / "plots" / "curves.png").stat().st_size > 0
    assert "matplotlib" in loaded and "torchvision" not in loaded, loaded


def test_an_image_run_on_a_zoo_cnn_without_plots_imports_neither_torchvision_matplotlib_nor_sklearn(tmp_path):
    loaded = _loaded_after(_train("--data", "shapes", "--model", "cnn", "--set", "data.n_samples=40",
                                  "--set", "logging.plots=false"), tmp_path)
    assert (tmp_path / "run" / "summary.json").is_file()
    assert not {"torchvision", "matplotlib", "sklearn"} & set(loaded), loaded  # the split draws without sklearn


def test_the_zoo_registers_without_torchvision_and_builds_with_it(tmp_path):
    code = ("import inspect, sys\n"
            "from dlseminar.catalog import choices\n"
            "from dlseminar.registry import MODELS\n"
            "names = choices()\n"  # every registry, model.backbone's choices included
            "assert {'resnet18', 'googlenet', 'vgg11', 'alexnet', 'rcnn_resnet18_fpn'} <= set(names['model.name'])\n"
            "assert {'resnet18', 'vgg16', 'alexnet'} <= set(names['model.backbone'])\n"
            "assert 'aux' in inspect.signature(MODELS.get('googlenet').fn).parameters\n"  # what the config checks read
            "assert 'torchvision' not in sys.modules, 'registering the zoo imported torchvision'\n"
            "m = MODELS.get('googlenet').fn(in_shape=(3, 32, 32), num_outputs=4, output_kind='scores')\n"
            "assert type(m).__mro__[1].__module__ == 'torchvision.models.googlenet'\n")
    assert "torchvision" in _loaded_after(code, tmp_path)
