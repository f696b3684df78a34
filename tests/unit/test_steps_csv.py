"""steps.csv's writer (engine/callbacks.StepsCSV, logging.steps): rows go ahead of last.pt, and a resume
cuts the file back to the checkpoint's step, whatever a killed run left behind."""
from __future__ import annotations

from dlseminar.engine.callbacks import StepsCSV

HEADER = "step,epoch,train/loss\n"


def _rows(first: int, last: int) -> str:
    return "".join(f"{s},{(s - 1) // 4 + 1},{1.0 / s!r}\n" for s in range(first, last + 1))


def test_a_new_log_has_its_header_and_the_flushed_rows(tmp_path):
    path = tmp_path / "steps.csv"
    path.write_text("left over from an --overwrite'd run\n")
    log = StepsCSV(path, 0)
    assert path.read_text() == HEADER
    for s in (1, 2, 3):
        log.write(s, 1, 1.0 / s)
    assert path.read_text() == HEADER  # kept until the next checkpoint write
    log.flush()
    assert path.read_text() == HEADER + _rows(1, 3)
    log.write(4, 1, 0.25)
    log.close()  # not flushed: no last.pt holds step 4, a resume takes it again
    assert path.read_text() == HEADER + _rows(1, 3)


def test_a_resume_cuts_the_rows_past_its_checkpoint(tmp_path):
    path = tmp_path / "steps.csv"
    path.write_text(HEADER + _rows(1, 10) + "11,3,0.09")  # a killed run: steps after last.pt, a cut last row
    log = StepsCSV(path, 7)
    assert path.read_text() == HEADER + _rows(1, 7)
    for s in range(8, 13):
        log.write(s, (s - 1) // 4 + 1, 1.0 / s)
    log.flush()
    log.close()
    assert path.read_text() == HEADER + _rows(1, 12)  # every step once, in order

    untouched = path.stat().st_mtime_ns
    StepsCSV(path, 12).close()  # a clean stop: nothing to cut, nothing rewritten
    assert path.stat().st_mtime_ns == untouched and path.read_text() == HEADER + _rows(1, 12)
    path.write_text("epoch,lr\n1,0.1\n")  # not a steps.csv: begun again
    StepsCSV(path, 5).close()
    assert path.read_text() == HEADER
