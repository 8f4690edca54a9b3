"""The one exception type for bad user input (config, checkpoint, data set).

Tasks catch it, print its message as a single line and exit with status 2,
so every message must name the file and the key or value at fault.
"""


class UserError(Exception):
    """Bad input: shown to the user as one line, exit status 2, no traceback."""
