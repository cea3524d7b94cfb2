"""Defaults sized for a CPU when the policy reads cameras (issue 12): batch 64 and 2000 steps for every supervised
method unless given (diffusion and flow: 4000, the first half a regression warm-up of their image encoder); a
state-only policy keeps each method's own defaults exactly."""

import json

import pytest

from mimetic.algos import method_module
from mimetic.algos.trainer import resolve_defaults, resolve_for_dataset
from mimetic.cli import main

STATE_DEFAULTS = {"bc": (256, 3000), "act": (64, 2000), "diffusion": (128, 2000), "flow": (128, 2000)}
CAMERA_STEPS = {"bc": 2000, "act": 2000, "diffusion": 4000, "flow": 4000}
CAMERA = {"cameras": "top", "state": "proprio", "image_size": 16}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """(camera dataset, state dataset) of `reach`, 3 demonstrations each."""
    from mimetic.collect import collect

    root = tmp_path_factory.mktemp("demos")
    return (collect("reach", root / "cam", 3, seed=0, progress=False, env_options=CAMERA),
            collect("reach", root / "state", 3, seed=0, progress=False))


def sizes(cfg) -> tuple:
    return cfg.batch_size, cfg.steps


@pytest.mark.parametrize("method", list(STATE_DEFAULTS))
def test_resolve_defaults_per_method(method):
    Config = method_module(method).Config
    cfg = Config()
    assert sizes(resolve_defaults(cfg, reads_cameras=True)) == (64, CAMERA_STEPS[method])
    assert sizes(resolve_defaults(cfg, reads_cameras=False)) == STATE_DEFAULTS[method]
    if method in ("diffusion", "flow"):
        assert resolve_defaults(cfg, True).regression_warmup == 0.5 and resolve_defaults(cfg, False).regression_warmup == 0.0
    assert sizes(cfg) == (None, None)  # a copy: the caller's config is not written into
    assert sizes(resolve_defaults(Config(batch_size=32, steps=7), reads_cameras=True)) == (32, 7)  # given values win


def test_resolve_for_dataset_follows_the_features_the_policy_reads(demos):
    cam, state = demos
    bc = method_module("bc")
    assert sizes(resolve_for_dataset(bc.Config(), cam)) == (64, 2000)
    assert sizes(resolve_for_dataset(bc.Config(obs_keys="observation.state"), cam)) == (256, 3000)  # no camera read
    assert sizes(resolve_for_dataset(bc.Config(), state)) == (256, 3000)


def test_training_records_the_resolved_values(demos, tmp_path):
    cam, state = demos
    bc = method_module("bc")
    bc.train(bc.Config(hidden=[8], steps=2), cam, tmp_path / "cam", progress=False)
    saved = json.loads((tmp_path / "cam/train.json").read_text())
    assert saved["train"]["batch_size"] == saved["config"]["batch_size"] == 64 and saved["config"]["steps"] == 2
    bc.train(bc.Config(hidden=[8], steps=2, batch_size=8), cam, tmp_path / "given", progress=False)
    assert json.loads((tmp_path / "given/train.json").read_text())["config"]["batch_size"] == 8  # an explicit value wins
    diffusion = method_module("diffusion")
    diffusion.train(diffusion.Config(down_dims=[8, 16], steps=1), state, tmp_path / "state", progress=False)
    assert json.loads((tmp_path / "state/train.json").read_text())["train"]["batch_size"] == 128  # as before


def test_cli_camera_run_resumes_and_help_names_both_defaults(demos, tmp_path, capsys):
    cam, _ = demos
    out = tmp_path / "r"
    assert main(["-q", "train", "bc", "--data", str(cam.root), "--out", str(out), "--steps", "2", "--hidden", "8"]) == 0
    assert main(["-q", "train", "bc", "--out", str(out), "--resume", "--steps", "3"]) == 0  # no "changed" complaint
    assert main(["-q", "train", "bc", "--out", str(out), "--resume", "--steps", "4", "--batch-size", "64"]) == 0
    saved = json.loads((out / "train.json").read_text())["config"]
    assert (saved["batch_size"], saved["steps"]) == (64, 4)
    assert main(["-q", "train", "bc", "--out", str(out), "--resume", "--batch-size", "32"]) == 2
    assert "--batch-size 32 (the run has 64)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "bc", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: 256; 64 when the policy reads cameras)" in help_text
    assert ("(default: 3000; 2000 when the policy reads cameras; times the number of tasks of a multi-task dataset, "
            "except a task-conditioned policy from states: max(3000, 1000 x the number of tasks))" in help_text)
    assert "(default: frames; tasks for a task-conditioned policy from states on a multi-task dataset)" in help_text


def test_bc_with_a_camera_sees_two_steps_and_predicts_chunks_a_state_policy_does_not(demos, tmp_path, capsys):
    """BC's image defaults reach policy fields too (chosen on Meta-World validation seeds): 2 observation steps, chunks of
    16 actions executing 8. The state policy keeps one step and one action; given values win; the help names both."""
    cam, state = demos
    bc = method_module("bc")
    horizons = lambda c: (c.n_obs_steps, c.horizon, c.n_action_steps)  # noqa: E731
    assert horizons(resolve_for_dataset(bc.Config(), cam)) == (2, 16, 8)
    assert horizons(resolve_for_dataset(bc.Config(), state)) == (1, 1, 1)
    assert horizons(resolve_for_dataset(bc.Config(n_obs_steps=1, horizon=4, n_action_steps=2), cam)) == (1, 4, 2)
    policy = bc.train(bc.Config(hidden=[8], steps=2), cam, tmp_path / "cam", progress=False)
    assert horizons(policy.config) == (2, 16, 8)
    assert horizons(bc.train(bc.Config(hidden=[8], steps=2), state, tmp_path / "state", progress=False).config) == (1, 1, 1)
    with pytest.raises(SystemExit):
        main(["train", "bc", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: 1; 2 when the policy reads cameras)" in help_text
    assert "(default: 1; 16 when the policy reads cameras)" in help_text


@pytest.fixture(scope="module")
def suite_demos(tmp_path_factory):
    """One demonstration of each of reach-corners' 4 tasks, in one dataset."""
    from mimetic.collect import collect

    return collect("reach-corners", tmp_path_factory.mktemp("suite") / "d", 1, seed=0, progress=False)


# A state policy's default steps on 4 tasks: K x S, except BC's multi-task recipe, max(S, 1000 x K), tasks drawn alike
MULTI_TASK_STATE = {"bc": (4000, "tasks"), "act": (8000, "frames"), "diffusion": (8000, "frames"),
                    "flow": (8000, "frames")}


@pytest.mark.parametrize("method", list(STATE_DEFAULTS))
def test_multi_task_data_gets_a_budget_per_task(method, suite_demos, demos):
    """One policy for K tasks trains K times a specialist's default steps (the multi-task protocol's budget, so the
    benchmarked one policy is what a user's default gives), or from states its method's multi-task default (BC: a
    third of it, every task drawn alike, for a task-conditioned policy); a one-task dataset and a given --steps are
    untouched."""
    Config = method_module(method).Config
    steps, sampling = MULTI_TASK_STATE[method]
    assert len(suite_demos.tasks) == 4
    for condition in ("task", "task-id"):
        resolved = resolve_for_dataset(Config(condition=condition), suite_demos)
        assert (resolved.steps, resolved.task_sampling) == (steps, sampling)
    blind = resolve_for_dataset(Config(), suite_demos)  # no task input: K x S for every method, frames drawn alike
    assert (blind.steps, blind.task_sampling) == (4 * STATE_DEFAULTS[method][1], "frames")
    given = resolve_for_dataset(Config(condition="task", steps=7, task_sampling="frames"), suite_demos)
    assert (given.steps, given.task_sampling) == (7, "frames")
    one_task = resolve_for_dataset(Config(), demos[1])
    assert (one_task.steps, one_task.task_sampling) == (STATE_DEFAULTS[method][1], "frames")
    with_cameras = resolve_defaults(Config(condition="task"), reads_cameras=True, n_tasks=3)
    assert (with_cameras.steps, with_cameras.task_sampling) == (3 * CAMERA_STEPS[method], "frames")


def test_bc_multi_task_steps_never_fall_under_one_tasks():
    """BC's 1000 steps per task from states: on 2 tasks that would be 2000, under one task's 3000; it gets 3000."""
    bc = method_module("bc")
    steps = [resolve_defaults(bc.Config(condition="task"), False, k).steps for k in (1, 2, 3, 4, 10)]
    assert steps == [3000, 3000, 3000, 4000, 10000]


def test_training_on_a_suite_records_the_scaled_steps(suite_demos, tmp_path, monkeypatch):
    bc = method_module("bc")
    monkeypatch.setitem(bc.Config.STATE_DEFAULTS, "steps", 5)  # a one-task default of 5 steps,
    monkeypatch.setitem(bc.Config.MULTI_TASK_DEFAULTS, "steps", 3)  # 3 per task on many: 4 tasks train 12
    bc.train(bc.Config(hidden=[4], condition="task"), suite_demos, tmp_path / "r", progress=False)
    saved = json.loads((tmp_path / "r/train.json").read_text())
    assert saved["config"]["steps"] == saved["train"]["steps"] == 12
    assert saved["config"]["task_sampling"] == "tasks"
