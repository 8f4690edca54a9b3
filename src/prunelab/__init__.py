"""prunelab: reference reproductions of classic neural-network pruning papers.

Importing the package registers the built-in pruning families (prunelab/families/). The Python
API is prunelab.api (docs/your-model.md); its bad input, like the tasks', raises prunelab.UserError.
"""

__version__ = "0.1.0"

from . import families  # noqa: E402,F401  (registers the built-in families before any config is read)
from .errors import UserError  # noqa: E402,F401  (bad input: one line naming what is at fault)
