"""User-facing errors: anything the user can fix (config, data, checkpoint, usage).

The CLI turns a UserError into one `error: ...` line on stderr and exit code 2;
everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix; exits with code 2 and a one-line message."""

    exit_code = 2


class ConfigError(UserError):
    """Unknown key, wrong type or out-of-range value in the resolved config."""


class DataError(UserError):
    """Missing, unreadable or malformed dataset."""


class CheckpointError(UserError):
    """A file that is not a readable dlseminar checkpoint."""


class Interrupted(Exception):
    """SIGINT/SIGTERM during training, raised once last.pt is safely written.

    Exit code 128 + signal number (130 for Ctrl-C, 143 for SIGTERM), as shells expect.
    """

    def __init__(self, signum: int, path):
        import signal

        self.code = 128 + signum
        self.path = path
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
