"""The base of every config section: unknown keys are errors, assignments are validated.

strict: a TOML value is taken as written, never converted ("30" is not an int, `true` is not a
number, "yes" is not a bool); a typo in a value's type is an error, not a silent guess. Strict
mode still takes an int where a float is expected (`lr = 1`) and a table for a nested section.
allow_inf_nan=False: `inf` and `nan` are valid TOML floats but no setting means them.
"""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)
