"""What turns data into a policy. Each method module defines `Config` (a dataclass whose fields are
its options, shown by `mimetic train METHOD --help`) and `train(cfg, dataset, run_dir, *, env,
env_options, resume, progress)`. Modules are imported only when their method is used."""

from __future__ import annotations

import importlib

from mimetic.errors import MimeticError

METHODS: dict[str, str] = {
    "bc": "mimetic.algos.bc",
    "act": "mimetic.algos.act",
    "diffusion": "mimetic.algos.diffusion",
    "flow": "mimetic.algos.flow",
    "maxent-irl": "mimetic.algos.irl",
    "gail": "mimetic.algos.gail",
    "airl": "mimetic.algos.airl",
}
SUPERVISED = ("bc", "act", "diffusion", "flow")  # trained by algos.trainer: these run under torchrun / --nproc


def method_module(name: str):
    if name not in METHODS:
        raise MimeticError(f"unknown training method {name!r}; known: {', '.join(sorted(METHODS))}")
    return importlib.import_module(METHODS[name])
