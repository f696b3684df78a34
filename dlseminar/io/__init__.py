"""Writing files safely: one atomic writer, and the rules for where a command may write.

- atomic.py: every file is written to a temporary file in the same folder, flushed to disk, then
  renamed over the target: a reader, or a crash at any moment, sees the old file or the new one.
- guards.py: where a command may write (every `--out`, `--write`): never an input of the command,
  never another run's files, an existing path only with --overwrite; one error line before any work.
- staged.py: a command's files written into a hidden folder, then moved into place all or none.

The names the rest of the package uses are taken from here (`from . import io`, `io.write_text`).
"""
from .atomic import TMP_PREFIX, atomic_open, atomic_path, write_bytes, write_text
from .guards import check_dir, check_file, check_run_dir, clear_run, config_inputs, numbered_dir, same_path
from .staged import staged

__all__ = ["TMP_PREFIX", "atomic_open", "atomic_path", "write_bytes", "write_text", "check_dir", "check_file",
           "check_run_dir", "clear_run", "config_inputs", "numbered_dir", "same_path", "staged"]
