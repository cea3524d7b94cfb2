"""DAgger and HG-DAgger: labels, gates, resume after a kill, faults, and a statistical improvement over BC."""

import json

import numpy as np
import pytest

from mimetic.algos.dagger import (DaggerActor, DaggerConfig, beta_at, deployed_iteration, label_episodes, read_log,
                                  run_dagger)
from mimetic.cli import main
from mimetic.data import Dataset
from mimetic.envs.reach import expert_action
from mimetic.errors import MimeticError
from mimetic.evaluate import evaluate, wilson_interval

SMALL = {"hidden": [32, 32]}


def small(**kw) -> DaggerConfig:
    base = dict(env="reach", steps=100, iterations=2, episodes_per_iter=4, initial_episodes=3, policy_options=SMALL,
                eval_episodes=2, num_envs=4)
    base.update(kw)
    return DaggerConfig(**base)


def test_beta_schedules():
    c = DaggerConfig(env="reach", iterations=4, beta="constant", beta0=0.8)
    assert [beta_at(c, i) for i in (1, 2, 5)] == [0.8, 0.8, 0.8]
    c.beta = "linear"
    for n in (2, 3, 5):  # beta0 at the first iteration, 0 at the last (the old schedule stopped at beta0 / n)
        c.iterations = n
        betas = [beta_at(c, i) for i in range(1, n + 1)]
        assert betas[0] == pytest.approx(0.8) and betas[-1] == 0.0 and np.all(np.diff(betas) < 0), betas
    c.iterations = 5
    assert beta_at(c, 3) == pytest.approx(0.4)
    c.beta = "exponential"
    assert beta_at(c, 2) == pytest.approx(0.64)
    c.beta = "cosine"
    with pytest.raises(MimeticError, match="--beta"):
        c.validate()


class _Const:
    def __init__(self, value):
        self.value = np.asarray(value, np.float32)

    def reset(self, n=1, seeds=None):
        pass

    def act(self, obs):
        return np.tile(self.value, (len(obs), 1))


def test_mixture_executes_expert_with_probability_beta():
    """Per-step mixture: over 4000 steps the expert's share must be consistent with beta = 0.3."""
    actor = DaggerActor(_Const([0.0, 0.0]), _Const([1.0, 1.0]), beta=0.3, rng=np.random.default_rng(1))
    actor.reset(8)
    who, n = 0, 0
    for _ in range(500):
        a = actor.act(np.zeros((8, 6), np.float32))
        e = actor.last_extras
        assert np.array_equal(a[:, 0] == 1.0, e["actor"] == 1)  # the recorded actor is the one executed
        assert np.all(e["label"] == 1.0)  # every step is labelled by the expert
        who += int(e["actor"].sum())
        n += len(a)
    lo, hi = wilson_interval(who, n)
    assert lo <= 0.3 <= hi


def test_label_episodes_keeps_only_takeover_segments():
    from mimetic.data import Episode

    actor = np.array([0, 1, 1, 0, 0, 1, 1, 1])
    labels, executed = np.full((8, 2), 5.0), np.zeros((8, 2))
    ep = Episode(np.arange(8)[:, None] * np.ones((1, 6)), executed, np.zeros(8), np.arange(8) == 7, terminated=True,
                 extras={"actor": actor, "label": labels, "executed_action": executed})
    segs = label_episodes([ep], 3, takeover_only=True)
    assert [s.observations[:, 0].tolist() for s in segs] == [[1, 2], [5, 6, 7]]
    assert [s.terminated for s in segs] == [False, True]
    assert all(np.all(s.actions == 5.0) and np.all(s.extras["iteration"] == 3) for s in segs)
    (full,) = label_episodes([ep], 3, takeover_only=False)
    assert len(full) == 8 and np.all(full.actions == 5.0) and full.extras["actor"].tolist() == actor.tolist()


def test_dagger_cli_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["-q", "dagger", "reach", "--out", str(run), "--iterations", "2", "--episodes-per-iter", "4",
                 "--initial-episodes", "3", "--steps", "100", "--policy-option", "hidden=[32,32]", "--beta", "constant",
                 "--beta0", "0.5", "--eval-episodes", "2", "--num-envs", "4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = read_log(run)
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    ds = Dataset.load(run / "data")
    it = ds.extra("iteration")
    # every rollout episode is kept whole, and every frame carries the expert's label
    assert ds.num_episodes == 3 + 2 * 4 and [int(np.sum(ds.extra("iteration")[ds.episode_starts] == i)) for i in range(3)] == [3, 4, 4]
    assert np.allclose(ds.actions, np.stack([expert_action(o) for o in ds.observations]), atol=1e-6)
    assert set(np.unique(ds.extra("actor")[it > 0])) == {0, 1}  # both acted under beta = 0.5
    learner = (ds.extra("actor") == 0)
    assert not np.allclose(ds.extra("executed_action")[learner], ds.actions[learner])  # the learner's own actions ran
    assert [r["expert_labels"] for r in rows][-1] == ds.num_frames and rows[1]["new_labels"] == int(np.sum(it == 1))
    assert (run / "dagger.png").stat().st_size > 0
    code = main(["-q", "eval", str(run), "--episodes", "4", "--json", str(tmp_path / "e.json")])
    assert code == 0 and json.loads((tmp_path / "e.json").read_text())["episodes"] == 4
    assert main(["-q", "dagger", "reach", "--out", str(run)]) == 2  # an existing run needs --resume
    assert "--resume" in capsys.readouterr().err
    # options whose values differ from the run's are refused on resume (they used to be ignored without a word)
    assert main(["-q", "dagger", "--out", str(run), "--resume", "--iterations", "4", "--steps", "100"]) == 2
    err = capsys.readouterr().err
    assert "--iterations 4 (the run has 2)" in err and "--steps" not in err and len(err.strip().splitlines()) == 1
    assert main(["-q", "dagger", "--out", str(run), "--resume", "--iterations", "2"]) == 0  # the same value: fine


def test_hg_dagger_scripted_and_ensemble_gates(tmp_path):
    import mimetic.algos.dagger as dagger

    rows = run_dagger(small(gate="scripted", threshold=0.2, iterations=1), tmp_path / "hg", progress=False)
    ds = Dataset.load(tmp_path / "hg/data")
    new = ds.extra("iteration") == 1
    assert rows[1]["new_labels"] == int(new.sum()) > 0
    assert np.all(ds.extra("actor")[new] == 1)  # only takeover segments are added
    assert np.allclose(ds.extra("executed_action")[new], ds.actions[new])
    assert rows[1]["new_labels"] == round(rows[1]["rollout_expert_fraction"] * rows[1]["rollout_frames"])
    rows = run_dagger(small(gate="ensemble", ensemble_size=2, threshold=0.05, iterations=1, gate_metric="action"),
                      tmp_path / "ens", progress=False)
    assert (tmp_path / "ens/iters/001/m1/model.safetensors").exists() and len(rows) == 2
    gate = dagger.StateGate(np.zeros((10, 6)), threshold=1.0, release=0.5)
    assert gate.score(np.array([[0, 0, 0, 0, 0, 0.5], [3, 0, 0, 0, 0, 0]], np.float32), None, None).tolist() == [0.5, 3.0]


def test_human_gate_labels_only_what_the_human_drove(tmp_path, reach_demos):
    from mimetic.teleop import InputState, ScriptedInput, TeleopActor

    states = [InputState(axes=[0.5, -0.5], toggle_takeover=t in (5, 10)) for t in range(30)]
    cfg = small(gate="human", expert="keyboard", iterations=1, episodes_per_iter=1, initial_data=str(reach_demos),
                env_options={"max_steps": 20})
    with pytest.raises(MimeticError, match="the caller must build it"):  # the algorithm never builds a UI
        run_dagger(cfg, tmp_path / "no-expert", progress=False)
    rows = run_dagger(cfg, tmp_path / "h", progress=False, expert=TeleopActor(ScriptedInput(states), 2))
    ds = Dataset.load(tmp_path / "h/data")
    new = ds.extra("iteration") == 1
    assert rows[1]["new_labels"] == 5 == int(new.sum())  # steps 5..9: the human held control
    assert np.allclose(ds.actions[new], [0.5, -0.5])


def _expert(kind):
    class Bad:
        def reset(self, n=1, seeds=None):
            pass

        def act(self, obs):
            if kind == "raise":
                raise ValueError("gripper jammed")
            if kind == "nan":
                return np.full((len(obs), 2), np.nan)
            return np.zeros((len(obs), 3))

    return Bad()


@pytest.mark.parametrize("kind,needle", [("raise", "raised ValueError: gripper jammed"), ("nan", "NaN"),
                                         ("size", r"shape \(3, 3\), expected \(3, 2\)")])
def test_faulty_expert_is_a_clear_error(tmp_path, kind, needle):
    with pytest.raises(MimeticError, match=needle):
        run_dagger(small(), tmp_path / kind, progress=False, expert=_expert(kind))


def test_bad_input(tmp_path, capsys):
    from conftest import make_episode

    Dataset.create(tmp_path / "d3", [make_episode(T=5, d=3, a=2)])
    with pytest.raises(MimeticError, match="observations of size 3 .* environment 'reach' has 6"):
        run_dagger(small(initial_data=str(tmp_path / "d3")), tmp_path / "r1", progress=False)
    with pytest.raises(MimeticError, match="unknown training method"):
        run_dagger(small(policy="nope"), tmp_path / "r2", progress=False)
    with pytest.raises(MimeticError, match="no option"):
        run_dagger(small(policy_options={"widht": 3}), tmp_path / "r3", progress=False)
    with pytest.raises(MimeticError, match="needs a human expert"):
        run_dagger(small(gate="human"), tmp_path / "r4", progress=False)
    with pytest.raises(MimeticError, match="--log-every must be at least 1"):  # before any episode is collected
        run_dagger(small(policy_options={"log_every": 0}), tmp_path / "r6", progress=False)
    assert not (tmp_path / "r6").exists()
    assert main(["-q", "dagger", "reach", "--out", str(tmp_path / "r5"), "--beta", "cosine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mimetic: error: --beta")


def test_resume_after_kills_neither_duplicates_nor_loses(tmp_path, monkeypatch):
    import mimetic.algos.dagger as dagger

    cfg = small(iterations=2, beta="constant", beta0=0.5)
    ref = run_dagger(cfg, tmp_path / "ref", progress=False)
    ref_ds = Dataset.load(tmp_path / "ref/data")
    run = tmp_path / "run"

    # kill 1: during the rollouts of iteration 1, after two of its four episodes ended (none committed)
    real_rollout, real_train = dagger.rollout, dagger._train_iteration

    def rollout(*a, **k):
        if k.get("desc") == "dagger iteration 1" and not (tmp_path / "killed-1").exists():
            (tmp_path / "killed-1").touch()
            ended = []

            def on_episode(ep):
                ended.append(ep)
                if len(ended) == 2:
                    raise KeyboardInterrupt

            k["on_episode"] = on_episode
        return real_rollout(*a, **k)

    def train(cfg, ds, run_dir, it, progress):
        # kill 2: after iteration 2's data was committed, before its training finished
        if it == 2 and not (tmp_path / "killed-2").exists():
            (tmp_path / "killed-2").touch()
            raise KeyboardInterrupt
        return real_train(cfg, ds, run_dir, it, progress)

    monkeypatch.setattr(dagger, "rollout", rollout)
    monkeypatch.setattr(dagger, "_train_iteration", train)
    with pytest.raises(KeyboardInterrupt):
        run_dagger(small(iterations=2, beta="constant", beta0=0.5), run, progress=False)
    assert [r["iteration"] for r in read_log(run)] == [0]
    assert Dataset.load(run / "data").info["mimetic"]["dagger_iteration"] == 0
    with pytest.raises(KeyboardInterrupt):
        run_dagger(DaggerConfig(env="reach"), run, resume=True, progress=False)
    ds = Dataset.load(run / "data")
    assert ds.info["mimetic"]["dagger_iteration"] == 2 and [r["iteration"] for r in read_log(run)] == [0, 1]
    rows = run_dagger(DaggerConfig(env="reach"), run, resume=True, progress=False)
    ds = Dataset.load(run / "data")
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    # the same episodes, in the same order, as the run that was never interrupted
    assert ds.num_episodes == ref_ds.num_episodes == 3 + 2 * 4
    assert np.array_equal(ds.observations, ref_ds.observations) and np.array_equal(ds.extra("iteration"), ref_ds.extra("iteration"))
    assert [r["expert_labels"] for r in rows] == [r["expert_labels"] for r in ref]


def test_hg_dagger_beats_bc_at_equal_labels(tmp_path):
    """On `reach`, BC from few demos stalls near the goal (covariate shift). HG-DAgger (scripted gate),
    started from 5 demos, must beat BC trained on at least as many expert labels (more demos), with
    disjoint 95% Wilson intervals over 100 test episodes each."""
    from mimetic.algos import bc
    from mimetic.collect import collect
    from mimetic.policies.base import PolicyActor, load_policy

    opts = {"hidden": [64, 64]}
    cfg = DaggerConfig(env="reach", steps=600, iterations=3, episodes_per_iter=10, initial_episodes=5, gate="scripted",
                       threshold=0.2, policy_options=opts, eval_episodes=10)
    rows = run_dagger(cfg, tmp_path / "hg", progress=False)
    labels = rows[-1]["expert_labels"]
    hg = evaluate(PolicyActor(load_policy(tmp_path / "hg")), "reach", 100)
    demos = collect("reach", tmp_path / "demos", 40, seed=0, progress=False)
    n = int(np.searchsorted(demos.episode_ends, labels)) + 1  # the first n demos hold >= `labels` frames
    assert demos.episode_ends[n - 1] >= labels
    Dataset.create(tmp_path / "bcd", [demos.episode(i) for i in range(n)], env="reach")
    policy = bc.train(bc.Config(steps=600, **opts), Dataset.load(tmp_path / "bcd"), tmp_path / "bc", progress=False)
    base = evaluate(PolicyActor(policy), "reach", 100)
    assert hg.ci95[0] > base.ci95[1], (labels, n, hg.success_rate, base.success_rate)


def test_cli_keyboard_expert_headless(tmp_path, monkeypatch, reach_demos, capsys):
    """`mimetic dagger --expert keyboard --gate human`: the CLI builds the teleop actor and passes it in."""
    import mimetic.teleop as teleop

    states = [teleop.InputState(axes=[0.5, -0.5], toggle_takeover=t in (3, 7)) for t in range(40)]
    monkeypatch.setattr(teleop, "make_input_source", lambda device, fps=10.0: teleop.ScriptedInput(states))
    code = main(["-q", "dagger", "reach", "--out", str(tmp_path / "k"), "--expert", "keyboard", "--gate", "human",
                 "--data", str(reach_demos), "--iterations", "1", "--episodes-per-iter", "1", "--steps", "50",
                 "--policy-option", "hidden=[16]", "--eval-episodes", "2", "--env-option", "max_steps=20"])
    assert code == 0, capsys.readouterr().err
    ds = Dataset.load(tmp_path / "k/data")
    new = ds.extra("iteration") == 1
    assert int(new.sum()) == 4 and np.allclose(ds.actions[new], [0.5, -0.5])  # steps 3..6: the human drove


def test_algos_do_not_import_the_teleop_ui():
    import ast
    import inspect

    import mimetic.algos.dagger as dagger

    tree = ast.parse(inspect.getsource(dagger))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("mimetic.teleop") for m in imported), imported


def test_discrete_env_is_refused_in_one_line(tmp_path):
    with pytest.raises(MimeticError, match="discrete actions") as e:
        run_dagger(small(env="objectworld"), tmp_path / "d", progress=False)
    assert "\n" not in str(e.value)


def _train_info(run, it):
    return json.loads((run / "iters" / f"{it:03d}" / "train.json").read_text())


def test_normalization_is_refitted_on_the_aggregated_data(tmp_path, reach_demos):
    """Iteration 0 learns from demonstrations whose actions are scaled by 0.2; the expert's labels
    in later iterations span the full range. Each iteration's min-max normalizer must be the one of
    its own training frames (the old warm start kept iteration 0's forever, so the learner could
    never output an action outside the first demonstrations' range)."""
    from mimetic.policies.base import load_policy

    src = Dataset.load(reach_demos)
    weak = [src.episode(i).replace(actions=0.2 * src.episode(i).actions, extras={}) for i in range(5)]
    Dataset.create(tmp_path / "weak", weak, env="reach")
    opts = {**SMALL, "norm_action": "minmax"}
    run = tmp_path / "run"
    run_dagger(small(initial_data=str(tmp_path / "weak"), policy_options=opts, beta="constant", beta0=0.0),
               run, progress=False)
    ds = Dataset.load(run / "data")
    from mimetic.algos.trainer import episode_frames

    for it in range(3):
        frames = episode_frames(ds, np.array(_train_info(run, it)["train_episodes"]))
        acts = ds.actions[frames]
        norm = load_policy(run / "iters" / f"{it:03d}").act_norm
        assert np.allclose(norm.shift.numpy(), (acts.max(0) + acts.min(0)) / 2, atol=1e-5)
        assert np.allclose(norm.scale.numpy(), (acts.max(0) - acts.min(0)) / 2, atol=1e-5)
    assert np.all(load_policy(run / "iters/002").act_norm.scale.numpy() > 2 * load_policy(run / "iters/000").act_norm.scale.numpy())


def test_held_out_episodes_stay_held_out(tmp_path):
    """An episode held out for the validation loss is never trained on, in any later iteration."""
    run = tmp_path / "run"
    run_dagger(small(iterations=3, initial_episodes=6, episodes_per_iter=6, policy_options={**SMALL, "val_fraction": 0.3},
                     steps=20, eval_episodes=1), run, progress=False)
    infos = [_train_info(run, it) for it in range(4)]
    trained = set().union(*(i["train_episodes"] for i in infos))
    held = [set(i["val_episodes"]) for i in infos]
    assert all(a <= b for a, b in zip(held, held[1:])), held  # once held out, held out for good
    assert not (held[-1] & trained), (held[-1], trained)
    assert len(held[-1]) >= 3 and len(trained) + len(held[-1]) == 6 + 3 * 6  # every episode is in one of them


def test_deployed_iteration_is_the_best_on_validation(tmp_path):
    rows = [{"iteration": i, "val_success": v} for i, v in enumerate([0.6, 0.9, 0.7, 0.9])]
    assert deployed_iteration(rows, "best") == 1 and deployed_iteration(rows, "last") == 3
    run = tmp_path / "run"
    rows = run_dagger(small(iterations=2, eval_episodes=4), run, progress=False)
    best = deployed_iteration(rows, "best")
    assert rows[-1]["deployed_iteration"] == best
    deployed = (run / "model.safetensors").read_bytes()
    assert deployed == (run / "iters" / f"{best:03d}" / "model.safetensors").read_bytes()
    with pytest.raises(MimeticError, match="--select"):
        small(select="max").validate()


def test_iteration_zero_is_bc_on_the_demonstrations(tmp_path, reach_demos):
    """Iteration 0 trains exactly what `mimetic train bc` trains on the same demos (same split, seed and
    budget), so deploying the best iteration on validation seeds can fall back on plain BC."""
    import torch
    from safetensors.torch import load_file

    from mimetic.algos import bc

    src = Dataset.load(reach_demos)
    Dataset.create(tmp_path / "demos", [src.episode(i) for i in range(10)], env="reach")
    run_dagger(small(iterations=0, initial_data=str(tmp_path / "demos"), steps=None,
                     policy_options={**SMALL, "steps": 40}), tmp_path / "run", progress=False)
    bc.train(bc.Config(steps=40, **SMALL), Dataset.load(tmp_path / "demos"), tmp_path / "bc", progress=False)
    a, b = load_file(str(tmp_path / "run/iters/000/model.safetensors")), load_file(str(tmp_path / "bc/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((tmp_path / "run/iters/000/train.json").read_text())
    assert info["val_episodes"] == json.loads((tmp_path / "bc/train.json").read_text())["val_episodes"]


def test_cli_from_scratch_and_select_last(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["-q", "dagger", "reach", "--out", str(run), "--iterations", "1", "--episodes-per-iter", "2",
                 "--initial-episodes", "3", "--steps", "20", "--policy-option", "hidden=[16]", "--eval-episodes", "2",
                 "--num-envs", "2", "--from-scratch", "--select", "last"])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((run / "train.json").read_text())
    assert saved["method"] == "dagger" and [r["step"] for r in read_log(run)] == [0, 1]
    cfg = saved["config"]
    assert cfg["warm_start"] is False and cfg["select"] == "last"
    assert read_log(run)[-1]["deployed_iteration"] == 1
    assert (run / "model.safetensors").read_bytes() == (run / "iters/001/model.safetensors").read_bytes()
    assert "deployed: iteration 1 (the last iteration)" in capsys.readouterr().out


def test_run_directory_convention_and_older_runs(tmp_path):
    """DAgger writes the shared run-directory files (train.json, metrics.jsonl with a step per iteration);
    a run written before them (dagger.json, dagger.jsonl) still resumes."""
    import shutil

    run = tmp_path / "run"
    rows = run_dagger(small(iterations=1, eval_episodes=1, steps=20), run, progress=False)
    assert [r["step"] for r in rows] == [0, 1] and [r["step"] for r in read_log(run)] == [0, 1]
    old = tmp_path / "old"
    shutil.copytree(run, old)
    info = json.loads((old / "train.json").read_text())
    (old / "dagger.json").write_text(json.dumps({"config": info["config"]}))
    (old / "dagger.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "step"}) + "\n" for r in rows))
    (old / "train.json").unlink()
    (old / "metrics.jsonl").unlink()
    with pytest.raises(MimeticError, match="already holds a DAgger run"):
        run_dagger(small(), old, progress=False)
    assert [r["iteration"] for r in run_dagger(DaggerConfig(env="reach"), old, resume=True, progress=False)] == [0, 1]


def test_dagger_with_cameras_and_a_reduced_state(tmp_path):
    """The mixture, the state gate and the labelled data work with dict observations: the images go to the
    dataset, the learner reads its state, the scripted expert its privileged state."""
    import mimetic.algos.dagger as dagger

    opts = {"cameras": "top", "state": "proprio"}
    # a data-path test, not a learning one: a few small image batches keep it short (image steps cost ~0.3 s)
    cfg = small(gate="scripted", gate_metric="state", threshold=0.5, iterations=1, env_options=opts, steps=10,
                policy_options={**SMALL, "batch_size": 16})
    rows = run_dagger(cfg, tmp_path / "cam", progress=False)
    ds = Dataset.load(tmp_path / "cam/data")
    assert ds.observation_keys == ["observation.state", "observation.images.top"]
    assert ds.frames("observation.images.top").shape[1:] == (64, 64, 3) and ds.obs_dim == 4
    assert rows[1]["new_labels"] == int((ds.extra("iteration") == 1).sum())
    gate = dagger.StateGate(np.zeros((10, 4)), threshold=1.0, release=0.5)
    obs = {"observation.state": np.array([[0, 0, 0, 0.5], [3, 0, 0, 0]], np.float32),
           "observation.images.top": np.zeros((2, 64, 64, 3), np.uint8)}
    assert gate.score(obs, None, None).tolist() == [0.5, 3.0]
