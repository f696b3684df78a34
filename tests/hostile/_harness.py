"""The hostile-input harness: run one command against a folder of inputs and hold it to the rules.

Every case of tests/hostile/ goes through `hostile()`. Whatever the command, it asserts:
- the exit code (2 for a usage, config or data mistake);
- on failure, exactly one `error:` line on stderr, holding the expected words, short;
- no traceback anywhere in the output;
- every file that existed before the command is byte for byte unchanged (inputs are never written),
  except those the case names in `may_change`;
- no temporary file is left anywhere under the folder (`.tmp-*`, `*.tmp`, `*.partial`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

TEMP_PATTERNS = (".tmp-*", "*.tmp", "*.partial", ".~*")
MAX_ERROR_CHARS = 500  # "one clear line": never a paragraph of library text


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by path relative to root."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temps(root: Path) -> list[str]:
    found = set()
    for pat in TEMP_PATTERNS:
        found.update(str(p.relative_to(root)) for p in Path(root).rglob(pat))
    return sorted(found)


def error_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("error:")]


def hostile(dlsem, root: Path, *args, rc: int = 2, words=(), may_change=(), real: bool = False, env=None,
            timeout: int = 300):
    """Run `dlsem *args` with the working directory `root`; assert the rules above; return the result."""
    root = Path(root)
    before = snapshot(root)
    r = dlsem(*args, cwd=root, real=real, env=env, timeout=timeout)
    both = r.out + r.err
    assert "Traceback" not in both, r
    assert r.rc == rc, r
    errors = error_lines(r.err)
    if rc == 2:
        assert len(errors) == 1, f"want exactly one error: line\n{r}"
        line = errors[0]
        assert len(line) <= MAX_ERROR_CHARS, f"error line of {len(line)} characters\n{r}"
        for w in words:
            assert w.lower() in line.lower(), f"{w!r} not in {line!r}"
    elif rc == 0:
        assert not errors, r
    after = snapshot(root)
    changed = [p for p, h in before.items() if after.get(p) != h and not any(p.startswith(m) for m in may_change)]
    assert not changed, f"input files changed or removed: {changed}\n{r}"
    left = temps(root)
    assert not left, f"temporary files left: {left}\n{r}"
    return r


def tiny_run(out: Path, kind: str = "xor") -> Path:
    """Train a run directory the hostile cases can read, copy or damage, in about a second:
    'xor' a two-feature MLP (2 epochs), 'img' a small CNN on 16x16 shapes (1 epoch); no plots."""
    from dlseminar import run
    from dlseminar.config import resolve

    data = {"xor": ["data.name=xor", "data.n_samples=200", "train.epochs=2"],
            "img": ["data.name=shapes", "model.name=cnn", "data.n_samples=60", "data.image_size=16", "train.epochs=1"]}
    run.train(resolve(sets=[*data[kind], "logging.plots=false", f"out={out}"]))
    return Path(out)


def copy_case(src: Path, tmp_path: Path) -> Path:
    """A fresh copy of a module's prepared folder for one case (cases may damage or add files)."""
    import shutil

    dst = Path(tmp_path) / "case"
    shutil.copytree(src, dst)
    return dst
