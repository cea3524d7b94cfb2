"""`python -m mimetic ...` = the `mimetic` command (what `torchrun -m mimetic train ...` runs on each rank)."""

import atexit
import os
import sys

from mimetic.cli import main
from mimetic.distributed import die_with_launcher, world_size

if __name__ == "__main__":
    die_with_launcher()  # a rank of torchrun / --nproc goes down with its launcher
    code = main()
    if world_size() > 1:
        # a rank runs its exit handlers (leave the process group, close metric sinks) and then skips the
        # interpreter's teardown: torch.distributed's C++ objects destroyed there can abort a rank whose peer has
        # already exited ("terminate called without an active exception"), turning a finished job into a failure
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
    sys.exit(code)
