"""Tasks and their experts.

`make_env(name, seed=None, **options)` returns a gymnasium 1.x environment whose `info` carries
`"success"` at every step; `make_expert(name, **options)` returns the task's scripted expert as a
batched actor (see `mimetic.actors`).

Names:
- built-in tasks, e.g. `reach` (see `BUILTIN`),
- `metaworld/<task>-v3` for the 50 Meta-World v3 tasks,
- `gym/<id>` for any registered gymnasium environment.

Suites of several tasks (`metaworld/MT10`, `reach-corners`, comma-separated lists) are not environments:
`mimetic.envs.suites` lists them, and `collect` / `eval` take them.

A task module provides `make_env(seed=None, **options)` and optionally `make_expert(**options)`;
modules are imported only when their task is asked for, so `import mimetic.envs` stays fast.
"""

from __future__ import annotations

import importlib

import gymnasium as gym

from mimetic.errors import MimeticError

# task name -> module that builds it (imported lazily)
BUILTIN: dict[str, str] = {
    "reach": "mimetic.envs.reach",
    "objectworld": "mimetic.envs.objectworld",
    "reach-bimodal": "mimetic.envs.reach_bimodal",
    "reach-fork": "mimetic.envs.reach_fork",
}


def register(name: str, module: str) -> None:
    """Register a built-in task name served by `module` (which defines make_env / make_expert)."""
    BUILTIN[name] = module


def _resolve(name: str):
    """Return (module, options_from_name) for a task name, or raise MimeticError."""
    if not isinstance(name, str) or not name:
        raise MimeticError(f"environment name must be a non-empty string, got {name!r}")
    from mimetic.envs.suites import is_suite, suite_tasks

    if is_suite(name):
        n = len(suite_tasks(name))  # an unknown member of a list is its own one-line error
        raise MimeticError(f"{name!r} is a suite of {n} tasks, not one environment: `mimetic collect` and "
                           "`mimetic eval` take it; give one of its tasks elsewhere")
    if name.startswith("metaworld/"):
        return importlib.import_module("mimetic.envs.metaworld"), {"task": name.split("/", 1)[1]}
    if name.startswith("gym/"):
        return importlib.import_module("mimetic.envs.gym"), {"env_id": name.split("/", 1)[1]}
    if name in BUILTIN:
        return importlib.import_module(BUILTIN[name]), {}
    known = ", ".join(sorted(BUILTIN))
    raise MimeticError(
        f"unknown environment {name!r}: use one of [{known}], 'metaworld/<task>-v3' or 'gym/<gymnasium id>'"
    )


def make_env(name: str, seed: int | None = None, **options) -> gym.Env:
    """Build the environment `name`. `seed` seeds its first reset; later resets take their own seeds."""
    module, fixed = _resolve(name)
    try:
        env = module.make_env(**fixed, **options)
    except (TypeError, ValueError) as e:  # an unknown option, or a value of the wrong kind (max_steps=abc)
        raise MimeticError(f"environment {name!r}: bad options {options}: {e}") from None
    if seed is not None:
        env.reset(seed=seed)
    return env


def make_expert(name: str, **options):
    """The scripted expert of task `name`, as a batched actor."""
    module, fixed = _resolve(name)
    if not hasattr(module, "make_expert"):
        raise MimeticError(f"environment {name!r} has no scripted expert")
    return module.make_expert(**fixed, **options)


def list_envs() -> list[str]:
    """Every task name mimetic knows (built-ins and Meta-World)."""
    from mimetic.envs.metaworld import TASKS

    return sorted(BUILTIN) + [f"metaworld/{t}" for t in TASKS]
