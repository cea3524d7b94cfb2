"""`python -m mimetic ...` = the `mimetic` command (what `torchrun -m mimetic train ...` runs on each rank)."""

import sys

from mimetic.cli import main

if __name__ == "__main__":
    sys.exit(main())
