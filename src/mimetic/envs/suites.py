"""Task suites: several tasks, each told by a short English instruction, collected and evaluated together.

A suite is a list of `SuiteTask`s (name, env, instruction, env options the task fixes). Names:

- `metaworld/MT10`, `metaworld/MT50`: Meta-World's multi-task benchmarks (10 and all 50 v3 tasks);
- `metaworld/ML10-train`, `metaworld/ML10-test`: Meta-World's ML10 split (10 training tasks, 5 held-out test
  tasks);
- `reach-corners`: 4 tasks on the built-in `reach` env, the goal fixed at one of the corners (+-0.6, +-0.6) and
  `state=proprio` (position and velocity only), so the goal is not in the state: a policy has to read the
  instruction (or a demonstration) to know where to go. Fast; for tests.
- `reach-colours`: 3 tasks on the built-in `reach` env with the top camera: three targets (green, blue, yellow) at
  places drawn per episode, the same places whichever is the goal; the instruction names the colour to reach and
  the state is `state=proprio`. Only the image shows where the targets are and only the instruction says which:
  a blind image policy can at best guess one of three, a policy without the image cannot find them.
- any comma-separated list of members: `metaworld/drawer-open-v3,metaworld/door-open-v3`, `drawer-open-v3,reach-v3`
  or `reach-top-left,reach-bottom-right` (a member is a Meta-World env name, or a task name of a suite above).

`mimetic collect SUITE` writes one dataset whose episodes carry their task's instruction as LeRobot's task string
(`meta/tasks.parquet`, `task_index`); `mimetic eval RUN --env SUITE` evaluates every task.

`INSTRUCTIONS` is the one table of instructions for the 50 Meta-World v3 tasks (written for mimetic; unique per
task); single-task Meta-World datasets store them as their task string too (`instruction_for`). The lists of
the Meta-World suites are written out here (no metaworld import); tests check them against metaworld's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mimetic.envs.metaworld import TASKS
from mimetic.errors import MimeticError


@dataclass(frozen=True)
class SuiteTask:
    name: str  # short, unique in its suite: "drawer-open-v3", "reach-top-left"
    env: str  # the environment it runs in: "metaworld/drawer-open-v3", "reach"
    instruction: str  # "open the drawer"
    options: dict = field(default_factory=dict)  # env options this task fixes (empty for Meta-World)

    def to_json(self) -> dict:
        return {"name": self.name, "env": self.env, "instruction": self.instruction, "options": dict(self.options)}


# One instruction per Meta-World v3 task (mimetic.envs.metaworld.TASKS), unique.
INSTRUCTIONS: dict[str, str] = {
    "assembly-v3": "put the nut on the peg",
    "basketball-v3": "dunk the ball into the basket",
    "bin-picking-v3": "move the puck into the other bin",
    "box-close-v3": "close the box with its lid",
    "button-press-topdown-v3": "press the button from the top",
    "button-press-topdown-wall-v3": "press the button from the top behind the wall",
    "button-press-v3": "press the button",
    "button-press-wall-v3": "press the button behind the wall",
    "coffee-button-v3": "press the button on the coffee machine",
    "coffee-pull-v3": "pull the mug from the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial",
    "disassemble-v3": "take the nut off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door",
    "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door",
    "drawer-close-v3": "close the drawer",
    "drawer-open-v3": "open the drawer",
    "faucet-close-v3": "turn the faucet off",
    "faucet-open-v3": "turn the faucet on",
    "hammer-v3": "hammer the nail into the wall",
    "hand-insert-v3": "put the gripper into the hole",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "peg-unplug-side-v3": "unplug the peg from the side",
    "pick-out-of-hole-v3": "pick the puck out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "pick-place-wall-v3": "pick up the puck and place it at the goal behind the wall",
    "plate-slide-back-side-v3": "slide the plate out of the cabinet sideways",
    "plate-slide-back-v3": "slide the plate out of the cabinet",
    "plate-slide-side-v3": "slide the plate into the cabinet sideways",
    "plate-slide-v3": "slide the plate into the cabinet",
    "push-back-v3": "pull the puck back to the goal",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck around the wall to the goal",
    "reach-v3": "reach the goal",
    "reach-wall-v3": "reach the goal behind the wall",
    "shelf-place-v3": "place the puck on the shelf",
    "soccer-v3": "kick the ball into the goal",
    "stick-pull-v3": "pull the box with the stick",
    "stick-push-v3": "push the box with the stick",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-close-v3": "close the window",
    "window-open-v3": "open the window",
}

MT10 = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3")
ML10_TRAIN = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-close-v3", "button-press-topdown-v3",
              "peg-insert-side-v3", "window-open-v3", "sweep-v3", "basketball-v3")
ML10_TEST = ("drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3")

CORNER = 0.6  # reach-corners: the goals (+-CORNER, +-CORNER)
_CORNERS = (("top-left", -1, 1), ("top-right", 1, 1), ("bottom-left", -1, -1), ("bottom-right", 1, -1))
COLOURS = ("green", "blue", "yellow")  # reach-colours: the targets (mimetic.envs.reach.TARGET_COLOURS)


def _metaworld(task: str) -> SuiteTask:
    return SuiteTask(task, f"metaworld/{task}", INSTRUCTIONS[task])


SUITES: dict[str, tuple[SuiteTask, ...]] = {
    "metaworld/MT10": tuple(_metaworld(t) for t in MT10),
    "metaworld/MT50": tuple(_metaworld(t) for t in TASKS),
    "metaworld/ML10-train": tuple(_metaworld(t) for t in ML10_TRAIN),
    "metaworld/ML10-test": tuple(_metaworld(t) for t in ML10_TEST),
    "reach-corners": tuple(
        SuiteTask(f"reach-{where}", "reach", f"reach the {where.replace('-', ' ')} corner",
                  {"goal": [sx * CORNER, sy * CORNER], "state": "proprio"}) for where, sx, sy in _CORNERS),
    "reach-colours": tuple(
        SuiteTask(f"reach-{colour}", "reach", f"reach the {colour} target",
                  {"targets": len(COLOURS), "target": colour, "state": "proprio", "cameras": "top"}) for colour in COLOURS),
}

# every member a comma-separated list may name: a suite task's name, or its env name when it is one task
_MEMBERS: dict[str, SuiteTask] = {}
for _tasks in SUITES.values():
    for _t in _tasks:
        _MEMBERS.setdefault(_t.name, _t)
        if not _t.options:
            _MEMBERS.setdefault(_t.env, _t)


def is_suite(name) -> bool:
    """Whether `name` names several tasks: a suite above, or a comma-separated list."""
    return isinstance(name, str) and (name in SUITES or "," in name)


def suite_tasks(name: str) -> list[SuiteTask] | None:
    """The tasks of suite `name` (a suite name or a comma-separated list), None when `name` is a single task.

    An unknown or repeated member of a list is a MimeticError."""
    if not is_suite(name):
        return None
    if name in SUITES:
        return list(SUITES[name])
    out: list[SuiteTask] = []
    for part in (p.strip() for p in name.split(",")):
        if not part:
            continue
        if part not in _MEMBERS:
            raise MimeticError(f"suite {name!r}: unknown task {part!r}: a member is 'metaworld/<task>-v3', a Meta-World "
                               f"task name or a task of reach-corners or reach-colours "
                               f"({', '.join(t.name for s in ('reach-corners', 'reach-colours') for t in SUITES[s])})")
        task = _MEMBERS[part]
        if task in out:
            raise MimeticError(f"suite {name!r}: task {task.name!r} is named twice")
        out.append(task)
    if not out:
        raise MimeticError(f"suite {name!r} names no task")
    return out


def select_tasks(tasks: list[SuiteTask], names: str | None, suite: str) -> list[SuiteTask]:
    """The tasks of `tasks` named in the comma-separated `names` (their name or env), in suite order; all if None."""
    if not names:
        return tasks
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {t.name for t in tasks} | {t.env for t in tasks if not t.options}
    bad = [n for n in wanted if n not in known]
    if bad or not wanted:
        raise MimeticError(f"--tasks {names!r}: not tasks of {suite} ({', '.join(t.name for t in tasks)})")
    return [t for t in tasks if t.name in wanted or (not t.options and t.env in wanted)]


def check_task_options(tasks: list[SuiteTask], env_options: dict, where: str) -> None:
    """An option a task fixes (reach-corners' goal and state, reach-colours' targets and camera) cannot be changed
    by --env-option: one line if it is."""
    for t in tasks:
        clash = sorted(k for k in t.options if k in env_options and env_options[k] != t.options[k])
        if clash:
            raise MimeticError(f"{where}: task {t.name} fixes {clash[0]}={t.options[clash[0]]!r}; drop --env-option {clash[0]}")


def instruction_for(env: str, options: dict | None = None) -> str:
    """The instruction of a single task: the table's for a Meta-World task, a suite member's when `env` and
    `options` are those of one (reach with a corner's goal and state=proprio), else the env name itself."""
    if env.startswith("metaworld/") and env.split("/", 1)[1] in INSTRUCTIONS:
        return INSTRUCTIONS[env.split("/", 1)[1]]
    options = options or {}
    for task in _MEMBERS.values():
        if task.options and task.env == env and all(_same(options.get(k), v) for k, v in task.options.items()):
            return task.instruction
    return env


def _same(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, list):  # goal given on the command line as "x,y"
        try:
            a = [float(x) for x in a.split(",")]
        except ValueError:
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(float(x) == float(y) for x, y in zip(a, b))
    return a == b


def describe_suites() -> list[str]:
    """One line per named suite, for `mimetic envs`."""
    return [f"{name} (suite of {len(tasks)} tasks)" for name, tasks in SUITES.items()]
