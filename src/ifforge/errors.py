"""Errors a user can cause and fix. The entrypoint prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input or bad configuration: the message says what to fix. Raised before any work: exit code 2."""

    exit_code = 2


class StageFailed(UserError):
    """A stage whose work did not succeed (requests failed, nothing usable came out, a damaged input): no manifest
    is written and the run exits with code 1. The message says what failed and how to resume."""

    exit_code = 1


class Interrupted(BaseException):
    """Ctrl-C, or SIGTERM/SIGUSR2 from a scheduler (Slurm preemption): a BaseException like KeyboardInterrupt, so
    nothing on the way out mistakes it for an ordinary failure to swallow."""

    def __init__(self, signum: int, name: str):
        super().__init__(f"interrupted by {name}; rerun the same command to resume (finished answers are cached)")
        self.exit_code = 128 + signum
