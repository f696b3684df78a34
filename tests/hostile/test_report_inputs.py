"""Hostile report inputs: `dlsem report` and `dlsem compare` on run, sweep and compare directories whose files
were damaged after the run (edited, truncated, replaced), and on folders that are no run at all.

A damaged summary.json, metrics.csv, config.yaml, sweep.json, sweep.csv, compare.csv or zoo.csv is named in
one `error:` line that says what is wrong with it and what rewrites it; never a traceback, never a page or a
ranking with silent gaps. In a sweep's page a damaged member is marked as damaged and the page still comes.

A 2-epoch xor run, a 2-member sweep and a comparison are made once per module; each case copies them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _harness import error_lines, hostile

MEMBER = "optim.lr=0.1"
TINY = ["data.name=xor", "data.n_samples=200", "train.epochs=2", "logging.plots=false"]


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """A folder holding run/ (a finished run), sw/ (a sweep of two) and cmp/ (compare of run and a member)."""
    from dlseminar import compare, run, sweep
    from dlseminar.config import resolve

    d = tmp_path_factory.mktemp("report-src")
    with pytest.MonkeyPatch.context() as m:
        m.chdir(d)  # compare.csv holds the paths as given: relative, so the copies resolve them too
        run.train(resolve(sets=[*TINY, "out=run"]))
        sweep.sweep(None, ["optim.lr=0.1,0.01"], TINY, 1, "sw", echo=lambda line: None)
        compare.compare([Path("run"), Path("sw") / MEMBER], out="cmp")
    return d


@pytest.fixture
def case(src, tmp_path):
    for name in ("run", "sw", "cmp"):
        shutil.copytree(src / name, tmp_path / name)
    return tmp_path


def _write(rel: str, content):
    """A damage: replace `rel` with text or bytes (a callable gets the old text and returns the new)."""
    def damage(root: Path):
        p = root / rel
        new = content(p.read_text()) if callable(content) else content
        if isinstance(new, bytes):
            p.write_bytes(new)
        else:
            p.write_text(new)
    return damage


def _summary(**changes):
    def edit(text):
        s = json.loads(text)
        for k, v in changes.items():
            if v is KeyError:
                del s[k]
            else:
                s[k] = v
        return json.dumps(s)
    return edit


def _dir(rel: str):
    def damage(root: Path):
        (root / rel).unlink()
        (root / rel).mkdir()
    return damage


GARBAGE = np.random.default_rng(1).bytes(600)
RESUME = "`dlsem train --resume run/last.pt` writes it again"
# (id, damage to the copied folder, words of the error line); each runs as `report run` and `compare run`
RUN_DAMAGE = [
    ("summary-invalid-json", _write("run/summary.json", '{\n  "name": "x",\n  "best": {,\n}\n'),
     ["run/summary.json is corrupt", "not valid JSON at line 3", RESUME]),
    ("summary-truncated", _write("run/summary.json", lambda t: t[: len(t) // 2]), ["run/summary.json is corrupt", "not valid JSON"]),
    ("summary-a-list", _write("run/summary.json", "[1, 2, 3]\n"), ["run/summary.json is corrupt", "a JSON list where an object"]),
    ("summary-a-string", _write("run/summary.json", '"finished"\n'), ["a JSON string where an object"]),
    ("summary-empty", _write("run/summary.json", ""), ["run/summary.json is corrupt (empty)"]),
    ("summary-binary", _write("run/summary.json", GARBAGE), ["run/summary.json is corrupt (binary bytes, not text)"]),
    ("summary-no-monitor", _write("run/summary.json", _summary(monitor=KeyError)), ["run/summary.json is corrupt (no 'monitor')"]),
    ("summary-no-best", _write("run/summary.json", _summary(best=KeyError)), ["(no 'best')"]),
    ("summary-best-a-list", _write("run/summary.json", _summary(best=[0.9])), ["'best' is list [0.9]"]),
    ("summary-metric-text", _write("run/summary.json", _summary(test={"test/acc": "high"})), ["test['test/acc'] is not a number"]),
    ("summary-seconds-text", _write("run/summary.json", _summary(seconds="3s")), ["'seconds' is string \"3s\""]),
    ("summary-mode-bogus", _write("run/summary.json", _summary(mode="up")), ["mode \"up\" is neither min nor max"]),
    ("summary-details-bad", _write("run/summary.json", _summary(test_details={"columns": ["a"], "rows": [3]})),
     ["'test_details' is not a table"]),
    ("summary-a-directory", _dir("run/summary.json"), ["run/summary.json is corrupt (a directory where a file belongs)"]),
    ("metrics-binary", _write("run/metrics.csv", GARBAGE), ["run/metrics.csv is corrupt (binary bytes, not text)", RESUME]),
    ("metrics-nul", _write("run/metrics.csv", lambda t: t.replace("\n1,", "\n1\0,", 1)), ["binary bytes, not text"]),
    ("metrics-ragged-row", _write("run/metrics.csv", lambda t: t + "3,0.1\n"),
     ["run/metrics.csv is corrupt (row 4 has 2 cells but the header has"]),
    ("metrics-text-value", _write("run/metrics.csv", lambda t: t.replace("\n2,", "\n2,abc", 1).replace("abc0", "abc", 1)),
     ["row 3, column", "is not a number"]),
    ("metrics-empty", _write("run/metrics.csv", ""), ["run/metrics.csv is corrupt (empty, but summary.json says 2 epochs ran)"]),
    ("metrics-header-only", _write("run/metrics.csv", lambda t: t.splitlines()[0] + "\n"), ["(no rows, but summary.json says 2"]),
    ("metrics-no-epoch-column", _write("run/metrics.csv", lambda t: t.replace("epoch,", "step,", 1)), ["no 'epoch' column"]),
    ("metrics-epoch-not-whole", _write("run/metrics.csv", lambda t: t.replace("\n2,", "\n2.5,", 1)),
     ["row 3: epoch '2.5' is not a whole number"]),
    ("metrics-duplicate-header", _write("run/metrics.csv", lambda t: t.replace("lr,", "epoch,", 1)),
     ["its first line is not a header of distinct column names"]),
    ("config-invalid-yaml", _write("run/config.yaml", "model:\n  name: [mlp\n"),
     ["run/config.yaml is corrupt", "not valid YAML at line", "delete it to report the run without it"]),
    ("config-a-list", _write("run/config.yaml", "- a\n- b\n"), ["run/config.yaml is corrupt (not a mapping of settings)"]),
    ("config-empty", _write("run/config.yaml", ""), ["run/config.yaml is corrupt (empty)"]),
    ("config-section-not-mapping", _write("run/config.yaml", lambda t: t.replace("model:", "model: 3\nold_model:", 1)),
     ["section 'model' is not a mapping"]),
    ("config-binary", _write("run/config.yaml", GARBAGE), ["run/config.yaml is corrupt (binary bytes, not text)"]),
]
COMMANDS = {"report": ("report", "run"), "compare": ("compare", "run", "--out", "out")}


@pytest.mark.parametrize("damage,cmd,words", [pytest.param(d, c, w, id=f"{i}-{c}") for i, d, w in RUN_DAMAGE for c in COMMANDS])
def test_damaged_run_file(dlsem, case, damage, cmd, words):
    damage(case)
    r = hostile(dlsem, case, *COMMANDS[cmd], words=words)
    assert len(error_lines(r.err)[0]) < 300
    assert not (case / "run" / "report.html").exists() and not (case / "out").exists()  # nothing half-made


# damages of a sweep or comparison directory: (id, damage, command, words)
GROUP_DAMAGE = [
    ("sweep-json-invalid", _write("sw/sweep.json", "{\n"), ("report", "sw"), ["sw/sweep.json is corrupt (not valid JSON at line",
                                                                              "run the same `dlsem sweep`"]),
    ("sweep-json-invalid", _write("sw/sweep.json", "{\n"), ("compare", "sw"), ["sw/sweep.json is corrupt (not valid JSON"]),
    ("sweep-json-a-list", _write("sw/sweep.json", "[]"), ("compare", "sw"), ["sw/sweep.json is corrupt (a JSON list"]),
    ("sweep-json-binary", _write("sw/sweep.json", GARBAGE), ("report", "sw"), ["sw/sweep.json is corrupt (binary bytes"]),
    ("sweep-json-member-escapes", _write("sw/sweep.json", lambda t: t.replace(f'"{MEMBER}"', '"../run"', 1)),
     ("compare", "sw"), ["member name \"../run\" is not a directory name"]),
    ("sweep-json-no-members", _write("sw/sweep.json", lambda t: json.dumps({**json.loads(t), "members": 3})),
     ("report", "sw"), ["'members' is not a list of runs"]),
    ("sweep-json-grid", _write("sw/sweep.json", lambda t: json.dumps({**json.loads(t), "grid": {"optim.lr": [1]}})),
     ("compare", "sw"), ["'grid' is not a list of [key, values]"]),
    ("sweep-csv-ragged", _write("sw/sweep.csv", lambda t: t + "9,x\n"), ("report", "sw"),
     ["sw/sweep.csv is corrupt (row 4 has 2 cells", "`dlsem compare sw` writes it again"]),
    ("sweep-csv-binary", _write("sw/sweep.csv", GARBAGE), ("report", "sw"), ["sw/sweep.csv is corrupt (binary bytes"]),
    ("zoo-csv-binary", _write("sw/zoo.csv", GARBAGE), ("report", "sw"), ["sw/zoo.csv is corrupt (binary bytes", "dlsem zoo"]),
    ("zoo-csv-ragged", _write("sw/zoo.csv", "rank,model,status\n1,cnn\n"), ("report", "sw"),
     ["sw/zoo.csv is corrupt (row 2 has 2 cells but the header has 3)"]),
    ("compare-csv-ragged", _write("cmp/compare.csv", lambda t: t.replace(",", "", 3)), ("report", "cmp"),
     ["cmp/compare.csv is corrupt (row", "`dlsem compare cmp` writes it again"]),
    ("member-summary-compare", _write(f"sw/{MEMBER}/summary.json", "{"), ("compare", "sw"),
     [f"sw/{MEMBER}/summary.json is corrupt (not valid JSON at line 1)", f"--resume sw/{MEMBER}/last.pt"]),
    ("member-metrics-compare", _write(f"sw/{MEMBER}/metrics.csv", GARBAGE), ("compare", "sw", "--out", "out"),
     [f"sw/{MEMBER}/metrics.csv is corrupt (binary bytes"]),
    ("member-config-compare", _write("run/config.yaml", "a: [\n"), ("compare", "run", f"sw/{MEMBER}", "--out", "out"),
     ["run/config.yaml is corrupt (not valid YAML"]),
    # not a run at all
    ("empty-dir", lambda root: (root / "empty").mkdir(), ("report", "empty"), ["'empty' is neither a run directory",
                                                                             "nor a sweep or compare directory"]),
    ("empty-dir", lambda root: (root / "empty").mkdir(), ("compare", "empty"), ["'empty' holds no run"]),
    ("plots-only", lambda root: (root / "p" / "plots").mkdir(parents=True), ("report", "p"), ["'p' is neither a run"]),
    ("a-file", lambda root: (root / "notes.txt").write_text("hi\n"), ("report", "notes.txt"),
     ["'notes.txt' is not a directory"]),
    ("a-file", lambda root: (root / "notes.txt").write_text("hi\n"), ("compare", "notes.txt"),
     ["'notes.txt' is not a run or sweep directory"]),
    ("missing", lambda root: None, ("report", "nope"), ["'nope' does not exist"]),
    ("missing", lambda root: None, ("compare", "nope"), ["'nope' does not exist"]),
]


@pytest.mark.parametrize("damage,args,words", [pytest.param(d, a, w, id=f"{i}-{a[0]}") for i, d, a, w in GROUP_DAMAGE])
def test_damaged_group_or_no_run(dlsem, case, damage, args, words):
    damage(case)
    r = hostile(dlsem, case, *args, words=words)
    assert len(error_lines(r.err)[0]) < 300


def test_damaged_member_is_shown_as_damaged_in_the_sweep_page(dlsem, case):
    (case / "sw" / MEMBER / "summary.json").write_text("[]")
    r = hostile(dlsem, case, "report", "sw", rc=0)
    page = (case / "sw" / "report.html").read_text()
    assert f"damaged: sw/{MEMBER}/summary.json is corrupt (a JSON list where an object {{...}} belongs)" in page
    assert page.count("damaged:") == 1  # the other member is whole
    assert r.err == ""


def test_missing_config_and_unfinished_run_are_no_error(dlsem, case):
    """What a run may honestly lack: config.yaml (copied without it), summary.json and metrics rows (a run
    whose first write failed). The page says so instead of failing; compare ranks it as unfinished."""
    (case / "run" / "config.yaml").unlink()
    r = hostile(dlsem, case, "report", "run", rc=0)
    page = (case / "run" / "report.html").read_text()
    assert "no config.yaml" in page and "val (best epoch" in page
    (case / "run" / "summary.json").unlink()
    (case / "run" / "metrics.csv").write_text("")
    r = hostile(dlsem, case, "report", "run", rc=0, may_change=("run/report.html",))
    assert "metrics.csv is empty: no epoch was recorded" in (case / "run" / "report.html").read_text()
    r = hostile(dlsem, case, "compare", "run", "--out", "out", rc=0)
    assert "unfinished" in r.out


@pytest.mark.parametrize("name", ["summary.json", "metrics.csv"])
def test_the_advice_works(dlsem, case, name):
    """'`dlsem train --resume run/last.pt` writes it again': it does, and the report then comes."""
    (case / "run" / name).write_bytes(GARBAGE)
    assert dlsem("report", "run", cwd=case).rc == 2
    r = dlsem("train", "--resume", "run/last.pt", cwd=case)
    assert r.rc == 0, r
    assert dlsem("report", "run", cwd=case).rc == 0
    assert len((case / "run" / "metrics.csv").read_text().splitlines()) == 3  # header and the 2 epochs
