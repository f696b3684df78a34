"""benchmarks/gpu_check.py (`make gpu-check`) on a machine without CUDA: it says so and exits 0, having
trained nothing. (The GPU checks themselves run where a GPU is: see the script's docstring.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU visible, even on a machine that has one
    p = subprocess.run([sys.executable, str(SCRIPT), "--keep", str(tmp_path / "work")], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "gpu-check: no CUDA device here (torch.cuda.is_available() is False): nothing to check"
    assert not (tmp_path / "work").exists()  # no run was started
