"""Task suites: the instruction table, the suite lists, multi-task collection and evaluation, and their errors."""

import json

import numpy as np
import pytest

from mimetic.actors import FunctionActor
from mimetic.cli import main
from mimetic.collect import collect
from mimetic.envs import make_env, make_expert
from mimetic.envs.metaworld import TASKS
from mimetic.envs.suites import INSTRUCTIONS, SUITES, instruction_for, is_suite, suite_tasks
from mimetic.errors import MimeticError
from mimetic.evaluate import evaluate, evaluate_suite


def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def names(suite):
    return [t.env.split("/", 1)[1] for t in suite_tasks(suite)]


def test_suite_lists_match_metaworld():
    """The written-out Meta-World suites are metaworld's own benchmarks (without importing metaworld in suites.py)."""
    env_dict = pytest.importorskip("metaworld.env_dict")
    assert names("metaworld/MT10") == list(env_dict.MT10_V3)
    assert sorted(names("metaworld/MT50")) == sorted(env_dict.MT50_V3) and len(names("metaworld/MT50")) == 50
    assert names("metaworld/ML10-train") == list(env_dict.ML10_V3["train"])
    assert names("metaworld/ML10-test") == list(env_dict.ML10_V3["test"])


def test_instruction_table_complete_and_unique():
    assert set(INSTRUCTIONS) == set(TASKS)
    texts = list(INSTRUCTIONS.values())
    assert len(set(texts)) == len(texts) and all(t and t == t.strip() for t in texts)
    assert instruction_for("metaworld/drawer-open-v3") == "open the drawer"
    corners = [t.instruction for t in suite_tasks("reach-corners")]
    assert len(set(corners)) == 4 and not set(corners) & set(texts)
    assert instruction_for("reach", {"goal": "-0.6,0.6", "state": "proprio"}) == "reach the top left corner"
    assert instruction_for("reach") == "reach" and instruction_for("gym/CartPole-v1") == "gym/CartPole-v1"
    for suite, tasks in SUITES.items():
        assert is_suite(suite) and len({t.name for t in tasks}) == len(tasks)
    assert not is_suite("metaworld/drawer-open-v3") and suite_tasks("reach") is None


def test_lists_and_errors():
    tasks = suite_tasks("metaworld/drawer-open-v3, door-open-v3,reach-top-left")
    assert [t.name for t in tasks] == ["drawer-open-v3", "door-open-v3", "reach-top-left"]
    assert tasks[0].instruction == "open the drawer" and tasks[2].options["state"] == "proprio"
    for bad in ("metaworld/nope-v3,reach-top-left", "reach-top-left,reach-top-left", ","):
        with pytest.raises(MimeticError):
            suite_tasks(bad)
    with pytest.raises(MimeticError, match="suite of 10 tasks") as e:
        make_env("metaworld/MT10")
    assert "\n" not in str(e.value)


def test_reach_goal_option():
    env = make_env("reach", goal="0.6,-0.6", state="proprio")
    starts = []
    for s in range(20):
        obs, _ = env.reset(seed=s)
        state, full = obs["observation.state"], obs["privileged.state"]
        assert state.shape == (4,) and list(full[4:6]) == pytest.approx([0.6, -0.6])  # the goal is not observed
        assert np.linalg.norm(state[:2] - [0.6, -0.6]) >= 0.3
        starts.append(tuple(state[:2]))
    assert len(set(starts)) == 20  # the start still comes from the seed
    with pytest.raises(MimeticError, match="goal"):
        make_env("reach", goal="2,0")
    default = make_env("reach")  # reach's default behaviour is unchanged: a random goal in the state
    goals = {tuple(default.reset(seed=s)[0][4:6]) for s in range(5)}
    assert len(goals) == 5


def test_reach_corners_needs_the_task():
    """The expert (which reads the privileged state) solves every corner; a blind policy that heads for one corner
    cannot solve the suite: the task is not in the observed state."""
    res = evaluate_suite(lambda t: make_expert(t.env, **t.options), "reach-corners", 40, num_envs=20)
    assert all(r.success_rate >= 0.95 for r in res.tasks.values()) and res.success_rate >= 0.95

    def to_top_right(obs):  # reads position and velocity only (state=proprio)
        obs = np.asarray(obs["observation.state"] if isinstance(obs, dict) else obs)
        return np.clip(4.0 * (np.array([0.6, 0.6]) - obs[..., 0:2]) - 1.5 * obs[..., 2:4], -1, 1)

    blind = evaluate_suite(lambda t: FunctionActor(to_top_right, act_dim=2), "reach-corners", 40, num_envs=20)
    assert blind.tasks["reach-top-right"].success_rate >= 0.95
    assert blind.success_rate <= 0.3 and blind.ci95[1] < 0.95
    single = evaluate(make_expert("reach"), "reach", 5, env_options={"goal": [0.6, 0.6], "state": "proprio"})
    assert single.successes == res.tasks["reach-top-right"].successes[:5]  # the same seeds for every task


def test_reach_colours_same_scene_goal_told_only_by_the_task():
    """reach-colours: for one seed the three tasks show the same frame (the same targets at the same places) and
    differ only in which target is the goal; the goal is one of the drawn targets, never in the observed state; the
    expert (privileged state) solves each; errors are one line."""
    from mimetic.envs.reach import TARGET_COLOURS, TARGET_SPACING

    tasks = suite_tasks("reach-colours")
    assert [t.instruction for t in tasks] == ["reach the green target", "reach the blue target", "reach the yellow target"]
    envs = [make_env(t.env, **t.options, image_size=32) for t in tasks]
    goals_seen = set()
    for seed in range(10):
        obs = [e.reset(seed=seed)[0] for e in envs]
        frames = [o["observation.images.top"] for o in obs]
        assert all(np.array_equal(frames[0], f) for f in frames[1:])
        assert all(np.array_equal(obs[0]["observation.state"], o["observation.state"]) for o in obs)
        goals = [o["privileged.state"][4:6] for o in obs]
        assert min(np.linalg.norm(a - b) for i, a in enumerate(goals) for b in goals[i + 1:]) >= TARGET_SPACING
        for colour, g in zip(("green", "blue", "yellow"), goals):  # each goal is drawn in its colour
            col, row = ((np.array([g[0], -g[1]]) + 1) * 16).astype(int)
            assert tuple(frames[0][row, col]) == TARGET_COLOURS[colour]
        goals_seen.add(tuple(goals[0]))
    assert len(goals_seen) == 10
    res = evaluate_suite(lambda t: make_expert(t.env, **t.options), "reach-colours", 30, num_envs=10)
    assert all(r.success_rate >= 0.95 for r in res.tasks.values())
    one = make_env("reach", cameras="top", image_size=32)  # one target: reach's frames keep their single green disk
    frame = one.reset(seed=0)[0]["observation.images.top"]
    assert not np.any(np.all(frame == TARGET_COLOURS["blue"], axis=-1))
    for bad, word in (({"targets": 5}, "targets"), ({"targets": 2, "target": "yellow"}, "target"),
                      ({"targets": 3, "goal": "0,0"}, "goal")):
        with pytest.raises(MimeticError, match=word) as e:
            make_env("reach", **bad)
        assert "\n" not in str(e.value)


def test_collect_and_eval_suite(tmp_path, capsys):
    from mimetic.data import Dataset

    code, out, err = run(capsys, "collect", "reach-corners", "--episodes", 2, "--out", tmp_path / "d")
    assert code == 0, err
    ds = Dataset.load(tmp_path / "d")
    corners = [t.instruction for t in suite_tasks("reach-corners")]
    assert ds.num_episodes == 8 and ds.tasks == corners and ds.env_name == "reach-corners"
    assert [ep.task for ep in ds.episodes()] == [c for c in corners for _ in range(2)]
    assert [t["instruction"] for t in ds.info["mimetic"]["suite"]] == corners
    assert ds.info["mimetic"]["next_seed"] == 2
    import pyarrow.parquet as pq

    tasks = pq.read_table(tmp_path / "d/meta/tasks.parquet").to_pydict()
    assert tasks["task"] == corners and tasks["task_index"] == [0, 1, 2, 3]
    index = ds.extra("task_index")[ds.episode_starts].tolist()
    assert index == [0, 0, 1, 1, 2, 2, 3, 3]
    code, out, err = run(capsys, "collect", "reach-corners", "--episodes", 1, "--out", tmp_path / "d")  # append
    ds = Dataset.load(tmp_path / "d")
    assert code == 0 and ds.num_episodes == 12 and ds.info["mimetic"]["next_seed"] == 3
    starts = {(ds.episode(i).task, tuple(ds.episode(i).observations[0][:2])) for i in range(12)}
    assert len(starts) == 12  # fresh seeds for every task

    code, out, err = run(capsys, "eval", "--expert", "--env", "reach-corners", "--episodes", 10, "--json",
                         tmp_path / "e.json")
    assert code == 0, err
    assert "reach the bottom left corner" in out and "mean" in out
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["env"] == "reach-corners" and res["episodes"] == 10 and len(res["tasks"]) == 4
    assert res["success_rate"] == pytest.approx(np.mean([r["success_rate"] for r in res["tasks"].values()]))
    assert res["tasks"]["reach-top-left"]["instruction"] == "reach the top left corner"
    assert res["ci95"][0] <= res["success_rate"] <= res["ci95"][1]

    code, out, err = run(capsys, "eval", "--expert", "--env", "reach-corners", "--episodes", 2, "--tasks",
                         "reach-top-left", "--json", tmp_path / "one.json")
    assert code == 0 and list(json.loads((tmp_path / "one.json").read_text())["tasks"]) == ["reach-top-left"]


def test_single_metaworld_task_string(tmp_path):
    pytest.importorskip("metaworld")

    ds = collect("metaworld/reach-v3", tmp_path / "d", 1, progress=False)
    assert ds.tasks == ["reach the goal"]


def test_eval_errors(tmp_path, capsys):

    collect("reach", tmp_path / "plain", 2, progress=False)
    for argv in (["eval", "--expert", "--env", "reach-corners,reach-nowhere", "--episodes", 1],
                 ["eval", "--expert", "--env", "reach-corners", "--tasks", "reach-nowhere", "--episodes", 1],
                 ["eval", "--expert", "--env", "reach-corners", "--env-option", "state=full", "--episodes", 1],
                 ["collect", "reach-corners,reach-nowhere", "--episodes", 1, "--out", tmp_path / "x"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "x").exists()
    from mimetic.evaluate import task_demos

    with pytest.raises(MimeticError, match="no demonstration of the task 'reach the top left corner'"):
        task_demos(tmp_path / "plain", ["reach the top left corner"])
    demo = task_demos(tmp_path / "plain", ["reach"], seed=0)["reach"]
    assert demo.task == "reach" and len(demo) > 0


def test_unconditioned_policy_on_a_suite(tmp_path, capsys):
    """A policy without task conditioning is a legal baseline on a suite; --demo with a dataset lacking a task
    is one line."""
    code, _, err = run(capsys, "collect", "reach-corners", "--episodes", 2, "--out", tmp_path / "d")
    assert code == 0, err
    code, _, err = run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 20)
    assert code == 0, err
    code, out, err = run(capsys, "eval", tmp_path / "r", "--episodes", 2, "--json", tmp_path / "e.json")
    assert code == 0, err  # the run's dataset env is the suite: every task is evaluated
    assert len(json.loads((tmp_path / "e.json").read_text())["tasks"]) == 4
    code, out, err = run(capsys, "eval", tmp_path / "r", "--episodes", 2, "--demo", tmp_path / "d", "--env",
                         "reach-corners")
    assert code == 2 and err.count("\n") == 1
    # compare on the suite: a method's success is the mean over tasks, with a per-task table; report shows both
    code, out, err = run(capsys, "compare", "reach-corners", "--methods", "bc", "--data", tmp_path / "d", "--seeds", 0,
                         "--episodes", 2, "--steps", 20, "--out", tmp_path / "c")
    assert code == 0, err
    res = json.loads((tmp_path / "c/compare.json").read_text())
    row = res["results"][0]
    assert set(row["tasks"]) == {t.name for t in suite_tasks("reach-corners")} and row["episodes_total"] == 8
    assert row["success_mean"] == pytest.approx(np.mean([t["success_mean"] for t in row["tasks"].values()]))
    assert "reach the top right corner" in out and res["expert"]["success_rate"] == 1.0
    code, out, err = run(capsys, "report", tmp_path / "c", tmp_path / "e.json", "--out", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "Per task" in page and "mean over tasks" in page and "reach the bottom left corner" in page


def test_interrupted_suite_collection_keeps_complete_episodes(tmp_path, monkeypatch):
    """A suite collection that fails at its third task leaves a valid dataset holding the first two tasks' episodes;
    the next collect continues every task with fresh seeds."""
    import mimetic.envs
    from mimetic.data import Dataset

    real = mimetic.envs.make_expert

    def failing(env, **options):
        if options.get("goal") == [-0.6, -0.6]:
            raise RuntimeError("the machine went down")
        return real(env, **options)

    monkeypatch.setattr(mimetic.envs, "make_expert", failing)
    with pytest.raises(RuntimeError):
        collect("reach-corners", tmp_path / "d", 2, progress=False)
    ds = Dataset.load(tmp_path / "d")
    assert ds.num_episodes == 4 and ds.tasks == ["reach the top left corner", "reach the top right corner"]
    monkeypatch.setattr(mimetic.envs, "make_expert", real)
    ds = collect("reach-corners", tmp_path / "d", 1, progress=False)
    assert ds.num_episodes == 8 and len(ds.tasks) == 4 and ds.info["mimetic"]["next_seed"] == 3


def test_collect_refuses_an_option_a_suite_task_fixes(tmp_path):
    for noise in (0.0, 0.2):  # with or without DART noise
        with pytest.raises(MimeticError, match="fixes goal=") as e:
            collect("reach-corners", tmp_path / "d", 1, progress=False, env_options={"goal": [0.0, 0.0]},
                    expert_noise=noise)
        assert "\n" not in str(e.value) and not (tmp_path / "d").exists()
