"""The base of every config section: unknown keys are errors, assignments are validated.

strict: a TOML value is taken as written, never converted ("30" is not an int, `true` is not a
number, "yes" is not a bool); a typo in a value's type is an error, not a silent guess. Strict
mode still takes an int where a float is expected (`lr = 1`) and a table for a nested section.
allow_inf_nan=False: `inf` and `nan` are valid TOML floats but no setting means them.
"""

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)


def directory_path(value: str) -> str:
    """A directory the run creates or writes into: refused when it, or a folder above it, is a file
    (checked here so that the error names the key instead of a NotADirectoryError later)."""
    path = Path(value)
    for part in (path, *path.parents):
        try:
            exists, is_dir = part.exists(), part.is_dir()
        except OSError:  # unreadable (permissions): the run itself reports what it cannot do there
            return value
        if exists:
            if is_dir:
                return value
            if part == path:
                raise ValueError("must be a directory, not a file")
            raise ValueError(f"must be a directory, and {str(part)!r} above it is a file")
    return value


# A str naming a folder (relative to the working directory), checked by directory_path.
Folder = Annotated[str, AfterValidator(directory_path)]
