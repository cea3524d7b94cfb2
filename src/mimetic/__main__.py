"""`python -m mimetic ...` = the `mimetic` command (what `torchrun -m mimetic train ...` runs on each rank)."""

import sys

from mimetic.cli import main
from mimetic.distributed import die_with_launcher

if __name__ == "__main__":
    die_with_launcher()  # a rank of torchrun / --nproc goes down with its launcher
    sys.exit(main())
