"""dlsem report: one self-contained HTML page of a run, a sweep or a compare directory.

One tiny run (3 epochs of the default digits MLP, health on, a hostile name), a 2-member sweep and a
compare of both are made once for the module, in this process. The fast tests read the HTML as text:
every plot embedded byte for byte, the config, metrics.csv and per-class tables, escaping, no external
reference, one error line for each mistake. The browser test opens the pages in headless Chromium
(Playwright): every image decodes, nothing fails or complains in the console. Without Chromium or
Playwright it skips, unless DLSEM_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""
from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import Result

HOSTILE = "<script>alert(1)<script>"  # a run name may not hold a "/" (it names a folder)
HOSTILE_CLASS = '<img src=x onerror="alert(2)">'
HOSTILE_FILE = "a&b <i>.png"  # a plot file name is shown as a caption too
IMG = re.compile(r'<img src="data:(image/[a-z+]+);base64,([A-Za-z0-9+/=]*)" alt="([^"]*)">')


def _cli(cwd: Path, *args) -> Result:
    """dlseminar.cli.main() in this process (as the dlsem fixture does) for the module-scoped fixture."""
    from dlseminar.cli import main

    mp = pytest.MonkeyPatch()
    mp.chdir(cwd)
    mp.setattr(sys, "argv", ["dlsem", *map(str, args)])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0
        finally:
            mp.undo()
    return Result(type("P", (), {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()})())


def _gif(path: Path) -> None:
    """A two-frame animated GIF, the kind of file a run's plots/ may hold besides PNGs."""
    from PIL import Image

    frames = [Image.new("RGB", (12, 8), c) for c in ((200, 30, 30), (30, 30, 200))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """{'cwd', 'run', 'sweep', 'compare'}: directories and their reports (written by `dlsem report`)."""
    cwd = tmp_path_factory.mktemp("report")
    r = _cli(cwd, "train", "--epochs", "3", "--out", "run", "--set", "train.health=true", "--set", f"name={HOSTILE}")
    assert r.rc == 0, r
    run = cwd / "run"
    _gif(run / "plots" / "anim.gif")
    shutil.copy(run / "plots" / "curves.png", run / "plots" / HOSTILE_FILE)
    s = json.loads((run / "summary.json").read_text())
    s["test_details"]["rows"][0][0] = HOSTILE_CLASS  # class names come from folder names: anything goes
    (run / "summary.json").write_text(json.dumps(s))
    r = _cli(cwd, "sweep", "--grid", "optim.lr=0.1,0.01", "--set", "train.epochs=2", "--out", "sw")
    assert r.rc == 0, r
    r = _cli(cwd, "compare", "run", "sw/optim.lr=0.1", "--out", "cmp")
    assert r.rc == 0, r
    made = {"cwd": cwd, "run": run, "sweep": cwd / "sw", "compare": cwd / "cmp"}
    for key in ("run", "sweep", "compare"):
        r = _cli(cwd, "report", made[key].name)
        assert r.rc == 0 and r.err == "", r
        assert r.out.strip() == str(Path(made[key].name) / "report.html")  # the path it wrote, as given
    return made


def _page(d: Path) -> str:
    return (d / "report.html").read_text(encoding="utf-8")


def _images(page: str) -> list[tuple[str, bytes, str]]:
    """(mime type, decoded bytes, alt text) of every embedded image, in page order."""
    return [(m, base64.b64decode(b64, validate=True), html.unescape(alt)) for m, b64, alt in IMG.findall(page)]


def _plots(run_dir: Path) -> list[Path]:
    return sorted((p for p in (run_dir / "plots").iterdir() if p.is_file()), key=lambda p: p.name)


def _section(page: str, anchor: str) -> str:
    """The HTML from <h2 id=anchor> to the next <h2>."""
    start = page.index(f'<h2 id="{anchor}"')
    end = page.find("<h2", start + 1)
    return page[start:end if end > 0 else None]


def _rows(fragment: str) -> list[list[str]]:
    """Body rows of the first table in fragment, as unescaped cell texts."""
    body = fragment.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)] for tr in re.findall(r"<tr>(.*?)</tr>", body)]


def test_run_report_embeds_every_plot_file(made):
    page, files = _page(made["run"]), _plots(made["run"])
    assert {p.suffix for p in files} == {".png", ".gif"} and len(files) >= 5  # curves, confusion, health, gif, copy
    images = _images(page)
    assert [alt for _, _, alt in images] == [p.name for p in files]  # every file, sorted by name, nothing else
    for (mime, data, _), p in zip(images, files):
        assert data == p.read_bytes()
        assert mime == {".png": "image/png", ".gif": "image/gif"}[p.suffix]
    captions = [html.unescape(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", page)]
    assert captions == [p.name for p in files]


def test_run_report_holds_title_config_epochs_and_classes(made):
    run, page = made["run"], _page(made["run"])
    s = json.loads((run / "summary.json").read_text())
    assert f"<h1>{html.escape(HOSTILE)}</h1>" in page
    for word in (s["model"], s["dataset"], s["task"], s["device"], s["stop_reason"], "best weights restored"):
        assert html.escape(str(word)) in page
    # headline: best val and test metrics, 4 significant digits
    assert f"{s['best']['val/acc']:.4g}" in page and f"{s['test']['test/acc']:.4g}" in page

    def flat(d, prefix=""):
        for k, v in d.items():
            yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else [(f"{prefix}{k}", v)]

    config = dict(_rows(_section(page, "config")))
    cfg = dict(flat(yaml.safe_load((run / "config.yaml").read_text())))
    assert set(config) == set(cfg)
    for key, value in cfg.items():
        assert yaml.safe_load(config[key]) == value, key  # the flow-YAML text reads back as the value

    with open(run / "metrics.csv", newline="") as f:
        metrics = list(csv.reader(f))
    epochs = _section(page, "epochs")
    assert re.findall(r'<th class="text">(.*?)</th>', epochs) == [html.escape(h) for h in metrics[0]]
    shown = _rows(epochs)
    assert len(shown) == len(metrics) - 1 == 3
    for row, raw in zip(shown, metrics[1:]):
        assert row[0] == raw[0]  # epoch as an integer
        assert [float(v) for v in row[1:]] == pytest.approx([float(v) for v in raw[1:]], rel=1e-3)

    classes = _rows(_section(page, "per-class"))
    d = s["test_details"]
    assert len(classes) == len(d["rows"]) == 10
    assert [r[0] for r in classes] == [str(r[0]) for r in d["rows"]]
    assert classes[1][1:] == [str(d["rows"][1][1]), *(f"{v:.3f}" for v in d["rows"][1][2:])]

    health = _section(page, "health")
    for layer in s["health"]["layers"]:
        assert html.escape(layer) in health


def test_run_report_shows_the_diagnosis_line(made, dlsem, tmp_path):
    """The line diagnosis.py wrote to summary.json heads the metrics; a summary written before runs were
    diagnosed (diagnosis null) shows none."""
    s = json.loads((made["run"] / "summary.json").read_text())
    line = s["diagnosis"]["line"]
    assert line and "->" in line  # what the curves show, and what to try
    metrics = _section(_page(made["run"]), "metrics")
    assert f'<p class="diagnosis"><b>Diagnosis</b>: {html.escape(line)}</p>' in metrics
    shutil.copytree(made["run"], tmp_path / "old")
    (tmp_path / "old" / "summary.json").write_text(json.dumps({**s, "diagnosis": None}))
    assert dlsem("report", "old").rc == 0
    page = (tmp_path / "old" / "report.html").read_text(encoding="utf-8")
    assert "Diagnosis" not in page and 'class="diagnosis"' not in page.split("</style>", 1)[1]
    assert f"{s['best']['val/acc']:.4g}" in _section(page, "metrics")  # the rest of the page as before


def test_user_text_is_escaped(made):
    page = _page(made["run"])
    assert "<script" not in page.lower() and "<img src=x" not in page  # no tag of theirs, only text
    assert html.escape(HOSTILE) in page and html.escape(HOSTILE_CLASS) in page and html.escape(HOSTILE_FILE) in page


@pytest.mark.parametrize("kind", ["run", "sweep", "compare"])
def test_nothing_points_outside_the_page(made, kind):
    page = _page(made[kind])
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page and "url(" not in page
    tags = re.findall(r"<[a-zA-Z][^>]*>", page)  # real tags only: escaped user text reads &lt;img src=...
    assert all(v.startswith("#") for t in tags for v in re.findall(r'\bhref="([^"]*)"', t))
    sources = [v for t in tags for v in re.findall(r'\bsrc=("?[^" >]*)', t)]
    assert all(v.startswith('"data:image/') for v in sources)
    assert len(sources) == len(IMG.findall(page)) == page.count("<img ")  # each one of the parsed data: images


def _sweep_members(d: Path) -> list[Path]:
    with open(d / "sweep.csv", newline="") as f:
        return [d / row["run"] for row in csv.DictReader(f)]


def test_sweep_report_ranks_and_shows_each_member(made):
    d, page = made["sweep"], _page(made["sweep"])
    with open(d / "sweep.csv", newline="") as f:
        ranked = list(csv.DictReader(f))
    table = _rows(page.split("<h2>Ranked", 1)[1])
    assert len(table) == len(ranked) == 2
    assert [r[1] for r in table] == [r["run"] for r in ranked] and [r[2] for r in table] == ["finished"] * 2
    sections = page.split("<details>")[1:]
    assert len(sections) == 2 and page.count("</details>") == 2
    top = _images(page.split("<details>", 1)[0])
    assert [(alt, data) for _, data, alt in top] == [(p.name, p.read_bytes()) for p in _plots(d)]
    # under the ranked table, each member's diagnosis line in rank order (its kind is the CSV's diagnosis column)
    listed = re.findall(r"<li><b>(.*?)</b>: (.*?)</li>", page.split("<h2>Ranked", 1)[1].split("<h2>", 1)[0])
    expected = []
    for row in ranked:
        s = json.loads((d / row["run"] / "summary.json").read_text())
        assert row["diagnosis"] == s["diagnosis"]["kind"]
        expected.append((f"#{row['rank']} {html.escape(row['run'])}", html.escape(s["diagnosis"]["line"])))
    assert listed == expected
    for member, section in zip(_sweep_members(d), sections):
        assert f"<summary>#{ranked[[r['run'] for r in ranked].index(member.name)]['rank']} " in section
        s = json.loads((member / "summary.json").read_text())
        assert f"{s['best']['val/acc']:.4g}" in section and f"{s['test']['test/acc']:.4g}" in section
        assert f'<p class="diagnosis"><b>Diagnosis</b>: {html.escape(s["diagnosis"]["line"])}</p>' in section
        images = _images(section)
        assert [(alt, data) for _, data, alt in images] == [(p.name, p.read_bytes()) for p in _plots(member)]


def test_compare_report_finds_its_runs(made):
    page = _page(made["compare"])
    assert len(page.split("<details>")) - 1 == 2 and "not found" not in page
    expected = [*_plots(made["compare"]), *_plots(made["run"]), *_plots(made["sweep"] / "optim.lr=0.1")]
    assert sorted(data for _, data, _ in _images(page)) == sorted(p.read_bytes() for p in expected)


def test_out_writes_the_file_there(dlsem, made, tmp_path):
    r = dlsem("report", made["sweep"], "--out", "sub/dir/sweep.html")
    assert r.rc == 0 and r.out.strip() == str(Path("sub/dir/sweep.html")), r
    assert (tmp_path / "sub/dir/sweep.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("args, words", [
    (["missing"], "does not exist"),
    (["run/config.yaml"], "is not a directory"),
    (["empty"], "neither a run directory"),
    (["run", "--out", "run/config.yaml/report.html"], "cannot write the report"),
    (["run", "--out", "run/plots"], "is a directory"),
])
def test_mistakes_are_one_error_line(dlsem, made, args, words):
    (made["cwd"] / "empty").mkdir(exist_ok=True)
    r = dlsem("report", *args, cwd=made["cwd"])
    assert r.rc == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], r
    assert r.out == ""


# ---------------------------------------------------------------- in a real browser
def _chromium():
    """(sync_playwright, chromium path), or skip -- or fail where DLSEM_REQUIRE_BROWSER=1 (CI)."""
    give_up = pytest.fail if os.environ.get("DLSEM_REQUIRE_BROWSER") == "1" else pytest.skip
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        give_up("playwright is not installed (pip install -e '.[test]'); the report is not checked in a browser")
    exe = os.environ.get("DLSEM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe or not Path(exe).exists():
        give_up("no chromium found (PATH or DLSEM_CHROMIUM); the report is not checked in a browser")
    return sync_playwright, exe


def test_reports_render_offline_in_chromium(made):
    sync_playwright, exe = _chromium()
    expected = {"run": len(_plots(made["run"])),
                "sweep": len(_plots(made["sweep"])) + sum(len(_plots(m)) for m in _sweep_members(made["sweep"]))}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            for kind, count in expected.items():
                page = browser.new_page()
                problems = []
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
                page.goto((made[kind] / "report.html").resolve().as_uri(), wait_until="load")
                images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
                assert len(images) == count, (kind, images)
                assert all(done and width > 0 for done, width, _ in images), (kind, images)
                assert page.title().endswith("dlsem report")
                assert problems == [], (kind, problems)
                page.close()
        finally:
            browser.close()
