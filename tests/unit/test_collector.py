"""The collector policy of a CLI process (collector.py): off while libraries load, everything alive at the
end of assemble.build frozen, and the process left as it was found after the command."""
from __future__ import annotations

import gc

from dlseminar import collector


def test_hold_settle_release():
    assert gc.isenabled() and gc.get_freeze_count() == 0
    try:
        collector.hold()
        assert not gc.isenabled()
        collector.settle()
        assert gc.isenabled() and gc.get_freeze_count() > 0  # the loaded libraries, skipped from now on
        collector.settle()  # a second build (a sweep's next member) changes nothing
        assert gc.isenabled()
    finally:
        collector.release()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_command_without_a_build_and_one_that_fails_leave_the_collector_on(dlsem):
    assert dlsem("datasets").rc == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert dlsem("train", "--set", "optim.lr=-1").rc == 2  # refused before anything is built
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_training_ends_with_the_collector_on_and_nothing_frozen(dlsem, tmp_path):
    r = dlsem("train", "--epochs", "1", "--set", "logging.plots=false", "--out", "run")
    assert r.rc == 0, r
    assert gc.isenabled() and gc.get_freeze_count() == 0
