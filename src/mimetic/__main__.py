"""`python -m mimetic ...` = the `mimetic` command (what `torchrun -m mimetic train ...` runs on each rank)."""

import sys

from mimetic.cli import main
from mimetic.distributed import die_with_launcher, exit_rank, world_size

if __name__ == "__main__":
    die_with_launcher()  # a rank of torchrun / --nproc goes down with its launcher
    code = main()
    if world_size() > 1:
        exit_rank(code or 0)  # skips the teardown that can abort a finished rank
    sys.exit(code)
