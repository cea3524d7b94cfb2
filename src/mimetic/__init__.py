"""mimetic: teach robots by demonstration.

Imports are lazy on purpose: `import mimetic` must stay fast, so submodules are imported where used.
"""

__version__ = "0.1.0"

from mimetic.errors import MimeticError

__all__ = ["MimeticError", "__version__"]
