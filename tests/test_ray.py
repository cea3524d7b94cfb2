"""Rollouts on Ray (mimetic.shards): the same results as in process, whatever the shards; a killed worker's shard
re-runs; faults and bad input are one line, exit 2. A local Ray with 2 CPUs is started once for the module (about
5 s); tests that need Ray skip where it is not installed (`pip install mimetic[ray]`)."""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mimetic.cli import main
from mimetic.errors import MimeticError

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    old = os.environ.get("PYTHONPATH")
    # the workers import tests/ray_helpers.py (actors and an environment defined for these tests)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE)] + ([old] if old else []))
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory):
    """A tiny BC checkpoint for reach (imperfect, so episodes differ in length and success)."""
    from mimetic.algos import bc
    from mimetic.collect import collect

    root = tmp_path_factory.mktemp("raybc")
    ds = collect("reach", root / "demos", 6, seed=0, progress=False)
    bc.train(bc.Config(hidden=[64, 64], steps=300, log_every=300), ds, root / "run", progress=False)
    return root / "run"


def _backend(**kw):
    from mimetic.shards import RayBackend

    return RayBackend(**kw)


def test_eval_json_on_ray_equals_in_process(cluster, bc_run, tmp_path):
    """`eval --ray` writes the same JSON as the in-process evaluation (22 episodes in batches of 4: the last
    batch is partial), and so does the API with 1, 3 or 6 shards."""
    from mimetic.evaluate import evaluate
    from mimetic.policies.base import PolicyActor, load_policy

    args = ["-q", "eval", str(bc_run), "--env", "reach", "--episodes", "22", "--num-envs", "4", "--json"]
    assert main(args + [str(tmp_path / "local.json")]) == 0
    assert main(args + [str(tmp_path / "ray.json"), "--ray"]) == 0
    local = json.loads((tmp_path / "local.json").read_text())
    assert json.loads((tmp_path / "ray.json").read_text()) == local
    assert 0 < local["success_rate"] < 1 and len(set(local["lengths"])) > 1  # the episodes do differ
    actor = PolicyActor(load_policy(bc_run))
    for shards in (1, 3, 6):
        res = evaluate(actor, "reach", 22, num_envs=4, backend=_backend(shards=shards)).to_json()
        assert {**res, "policy": str(bc_run)} == local, shards


def test_dagger_mixture_rollout_on_ray_equals_in_process(cluster, bc_run):
    """The DAgger mixture draws per episode from its seed, so its rollouts split into Ray shards are the
    in-process ones: same executed actions, same who-acted record."""
    from mimetic.algos.dagger import CheckedExpert, DaggerActor
    from mimetic.envs import make_expert
    from mimetic.policies.base import PolicyActor, load_policy
    from mimetic.rollout import rollout

    def actor():
        return DaggerActor(PolicyActor(load_policy(bc_run)), CheckedExpert(make_expert("reach"), 2, "expert"),
                           beta=0.5, rng=np.random.default_rng(3))

    seeds = range(3_000_000, 3_000_010)
    local = rollout("reach", actor(), seeds, num_envs=4, task="reach")
    remote = rollout("reach", actor(), seeds, num_envs=4, task="reach", backend=_backend(shards=3))
    assert len(remote) == len(local) == 10
    for a, b in zip(local, remote):
        assert np.array_equal(a.actions, b.actions) and np.array_equal(a.extras["actor"], b.extras["actor"])
        assert np.array_equal(a.observations, b.observations)
    assert 0 < np.mean(np.concatenate([e.extras["actor"] for e in local])) < 1


def test_a_killed_worker_has_its_shard_rerun(cluster, tmp_path):
    """A Ray worker killed (SIGKILL) in the middle of an episode: its shard runs again elsewhere, and the result
    is the full, identical evaluation (no seed lost or counted twice)."""
    from mimetic.envs import make_expert
    from mimetic.evaluate import evaluate
    from ray_helpers import KillOnce

    ref = evaluate(make_expert("reach"), "reach", 24, num_envs=4).to_json()
    marker = tmp_path / "killed"
    got = evaluate(KillOnce(make_expert("reach"), str(marker)), "reach", 24, num_envs=4,
                   backend=_backend(shards=3)).to_json()
    assert marker.exists(), "no worker was killed"
    assert got == ref


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_collect_on_ray_equals_in_process(cluster, tmp_path):
    """`collect --ray` writes the dataset the in-process collection writes, file for file, also when appending
    with --only-success (batches run ahead on Ray; the ones not needed are dropped)."""
    from mimetic.data.dataset import Dataset

    a, b = tmp_path / "a", tmp_path / "b"
    for out, extra in ((a, []), (b, ["--ray"])):
        assert main(["-q", "collect", "reach", "--episodes", "10", "--num-envs", "4", "--out", str(out)] + extra) == 0
        assert main(["-q", "collect", "reach", "--episodes", "5", "--num-envs", "4", "--only-success",
                     "--out", str(out)] + extra) == 0
    da, db = Dataset.load(a), Dataset.load(b)
    assert da.num_episodes == db.num_episodes == 15
    assert da.info["mimetic"]["next_seed"] == db.info["mimetic"]["next_seed"]
    for ea, eb in zip(da.episodes(), db.episodes()):
        assert np.array_equal(ea.observations, eb.observations) and np.array_equal(ea.actions, eb.actions)
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    differ = [k for k in fa if fa[k] != fb[k]]
    assert not differ, differ


def test_simulator_crash_in_a_ray_worker_names_env_and_seed(cluster):
    from mimetic.envs import make_expert
    from mimetic.evaluate import evaluate
    from ray_helpers import CRASH_SEED

    env = "gym/ray_helpers:CrashyReach-v0"
    with pytest.raises(MimeticError) as e:
        evaluate(make_expert("reach"), env, 8, num_envs=4, backend=_backend(shards=2))
    msg = str(e.value)
    assert env in msg and f"seed {CRASH_SEED}" in msg and "simulator exploded" in msg and "\n" not in msg


def test_an_address_that_does_not_answer_is_one_line_exit_2(capsys):
    pytest.importorskip("ray")
    t0 = time.monotonic()
    rc = main(["-q", "eval", "--expert", "--env", "reach", "--episodes", "2", "--ray-address", "127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "127.0.0.1:9" in err, err
    assert time.monotonic() - t0 < 15
    t0 = time.monotonic()  # an address where nothing replies at all: bounded by the connect timeout
    with pytest.raises(MimeticError, match="10.255.255.1:6379"):
        _backend(address="10.255.255.1:6379", connect_timeout=2.0).connect()
    assert time.monotonic() - t0 < 8


def test_ray_not_installed_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    rc = main(["-q", "collect", "reach", "--episodes", "2", "--out", str(tmp_path / "d"), "--ray"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "pip install mimetic[ray]" in err, err
    assert not (tmp_path / "d").exists()


def test_help_does_not_import_ray():
    import subprocess

    probe = "import sys\nfrom mimetic.cli import main\ntry:\n    main(['eval', '--help'])\nexcept SystemExit:\n    pass\n" \
            "print('ray' in sys.modules, file=sys.stderr)"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert r.stderr.strip().splitlines()[-1] == "False", r.stderr


def test_the_address_of_a_running_cluster_is_joined(cluster, tmp_path):
    """--ray-address with the GCS address of a live cluster passes the reachability check and evaluates there."""
    address = cluster.get_runtime_context().gcs_address
    args = ["-q", "eval", "--expert", "--env", "reach", "--episodes", "6", "--num-envs", "4", "--json"]
    assert main(args + [str(tmp_path / "a.json")]) == 0
    assert main(args + [str(tmp_path / "b.json"), "--ray-address", address]) == 0
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()


def test_compare_evaluations_on_ray_equal_in_process(cluster, tmp_path):
    """compare --ray: training stays here, the evaluations run on Ray and give the same eval.json."""
    from mimetic.collect import collect

    collect("reach", tmp_path / "demos", 4, seed=0, progress=False)
    args = ["-q", "compare", "reach", "--methods", "bc", "--data", str(tmp_path / "demos"), "--seeds", "0",
            "--episodes", "6", "--steps", "60", "--device", "cpu", "--out"]
    assert main(args + [str(tmp_path / "local")]) == 0
    assert main(args + [str(tmp_path / "ray"), "--ray"]) == 0
    a, b = (json.loads((tmp_path / d / "runs/bc-seed0/eval.json").read_text()) for d in ("local", "ray"))
    assert a.pop("policy") != b.pop("policy") and a == b


def test_a_ray_worker_reuses_its_environments_between_shards_and_drops_them_after_a_crash():
    """The shard function itself, in this process (no Ray needed): the second shard of the same environment runs
    on the first shard's simulators and gives the episodes a fresh build gives; a simulator crash drops them."""
    from mimetic import shards
    from mimetic.envs import make_expert
    from ray_helpers import CRASH_SEED

    job = {"env": "reach", "env_options": {}, "task": "", "threads": None}
    expert = make_expert("reach")
    first = shards._rollout_shard([[0, 1, 2], [3, 4, 5]], job, expert)
    cached = next(iter(shards._worker_cache.values()))
    second = shards._rollout_shard([[3, 4, 5]], job, expert)
    assert next(iter(shards._worker_cache.values())) is cached  # not rebuilt
    shards._drop_worker_envs()
    fresh = shards._rollout_shard([[3, 4, 5]], job, expert)
    assert [e.actions.tolist() for e in second[0]] == [e.actions.tolist() for e in fresh[0]] == \
        [e.actions.tolist() for e in first[1]]
    # a shard of fewer seeds (an uneven last shard) runs on the larger set kept, with the same episodes
    cached = next(iter(shards._worker_cache.values()))
    short = shards._rollout_shard([[4]], job, expert)
    assert next(iter(shards._worker_cache.values())) is cached
    assert short[0][0].actions.tolist() == first[1][1].actions.tolist()
    crashy = {**job, "env": "gym/ray_helpers:CrashyReach-v0"}
    with pytest.raises(MimeticError):
        shards._rollout_shard([[CRASH_SEED]], crashy, expert)
    assert not shards._worker_cache  # the failed simulators are not reused
