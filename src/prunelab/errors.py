"""The exceptions a task turns into an exit status: UserError for bad input (config, checkpoint,
data set), DriftFound for figures the `check` task finds changed.

Tasks catch a UserError, print its message as a single line and exit with status 2,
so every message must name the file and the key or value at fault.
"""


class UserError(Exception):
    """Bad input: shown to the user as one line, exit status 2, no traceback."""


class DriftFound(Exception):
    """A run's figures differ from the checked-in ones (the `check` task): `lines` holds one line per
    drifted figure; the task prints them and exits with status 1 (bad input stays a UserError, 2)."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines
