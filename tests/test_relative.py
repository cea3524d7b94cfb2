"""Egocentric features (`relative_to`): which dimensions are points, the offsets a policy reads, and that they let
BC generalise a point-to-point expert from few demonstrations (fast)."""

import json

import numpy as np
import pytest
import torch

from mimetic.algos import act, bc, diffusion
from mimetic.data import Dataset, Episode
from mimetic.envs.metaworld import STATE_NAMES
from mimetic.errors import MimeticError
from mimetic.features import STATE, relative_points
from mimetic.policies.base import load_policy, save_policy
from mimetic.policies.gaussian import TanhGaussianConfig, TanhGaussianPolicy
from mimetic.policies.mlp import MLPConfig, MLPPolicy

NAMES = ["hand_x", "hand_y", "goal_x", "goal_y"]


def test_meta_worlds_points_seen_from_the_hand():
    anchor, points = relative_points(STATE_NAMES, "hand", "here")
    assert anchor == [0, 1, 2]
    # obj1, obj2, the previous frame's hand, obj1 and obj2, the goal: each as x, y, z
    assert points == [[4, 5, 6], [11, 12, 13], [18, 19, 20], [22, 23, 24], [29, 30, 31], [36, 37, 38]]
    assert [STATE_NAMES[i] for i in points[-1]] == ["goal_x", "goal_y", "goal_z"]
    assert relative_points(NAMES, "goal", "here") == ([2, 3], [[0, 1]])


@pytest.mark.parametrize("names, anchor, match", [
    ([None] * 4, "hand", "not declared"),
    (NAMES, "wrist", "wrist_x and wrist_y"),
    (["hand_x", "hand_y", "vx", "vy"], "hand", "no other point"),
])
def test_relative_points_bad_input_is_one_line(names, anchor, match):
    with pytest.raises(MimeticError, match=match) as e:
        relative_points(names, anchor, "policy config")
    assert "\n" not in str(e.value) and str(e.value).startswith("policy config: relative_to=")


def point_policy(**kw):
    feats = {STATE: {"kind": "state", "shape": [4], "names": NAMES}}
    return MLPPolicy(MLPConfig(obs_dim=4, act_dim=2, hidden=[16], input_features=feats, relative_to="hand", **kw))


def test_offsets_are_read_normalized_and_survive_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    policy = point_policy()
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(200, 4)).astype(np.float32) * [1, 2, 3, 4] + [0, 1, 2, 3]
    policy.fit_normalization(obs, rng.uniform(-1, 1, (200, 2)))
    offsets = obs[:, 2:] - obs[:, :2]
    assert np.allclose(policy.relative_norm.shift.numpy(), offsets.mean(0), atol=1e-4)
    assert np.allclose(policy.relative_norm.scale.numpy(), offsets.std(0), rtol=1e-3)
    x = torch.as_tensor(obs[:5, None])  # (B, To=1, 4)
    read = policy.eval().normalize_vector(x)
    assert read.shape == (5, 1, 6) and policy.obs_encoder.output_dim == 6
    assert torch.allclose(read[..., :4], policy.obs_norm(x))
    back = policy.relative_norm.inverse(read[..., 4:])[:, 0].numpy()
    assert np.allclose(back, offsets[:5], atol=1e-4)

    save_policy(policy, tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    assert loaded.config.relative_to == "hand"
    assert torch.equal(loaded.predict(x), policy.predict(x))


def test_relative_to_needs_named_points_and_a_supervised_method():
    with pytest.raises(MimeticError, match="not declared"):
        MLPPolicy(MLPConfig(obs_dim=4, act_dim=2, relative_to="hand"))
    with pytest.raises(MimeticError, match="not gail / airl"):
        TanhGaussianPolicy(TanhGaussianConfig(obs_dim=4, act_dim=2, relative_to="hand",
                                              input_features={STATE: {"kind": "state", "shape": [4], "names": NAMES}}))


def point_to_point_episodes(n, seed, T=25):
    """A hand moving to a goal in the plane: the expert's action is 3 x the offset, clipped to [-1, 1]."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n):
        hand, goal = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        obs, actions = [], []
        for _ in range(T):
            a = np.clip(3 * (goal - hand), -1, 1)
            obs.append(np.concatenate([hand, goal]))
            actions.append(a)
            hand = hand + 0.1 * a
        eps.append(Episode(np.array(obs, np.float32), np.array(actions, np.float32), np.zeros(T), np.zeros(T, bool)))
    return eps


@pytest.fixture(scope="module")
def few_demos(tmp_path_factory):
    return Dataset.create(tmp_path_factory.mktemp("p2p") / "d", point_to_point_episodes(8, 0), feature_names={STATE: NAMES})


def action_error(policy, episodes) -> float:
    obs = torch.as_tensor(np.concatenate([e.observations for e in episodes]))[:, None]
    want = np.concatenate([e.actions for e in episodes])
    return float(np.abs(policy.eval().predict(obs)[:, 0].numpy() - want).mean())


def test_offsets_let_bc_generalise_from_few_demonstrations(few_demos, tmp_path):
    """From 8 demonstrations, BC on (hand, goal) must learn the offset between them; given the offset, the same BC
    acts on new goals with under half the error. Measured (mean |action error| on 20 new episodes, 2000 steps,
    training seeds 0 / 1): without 0.167 / 0.208, with 0.074 / 0.086; 16 demonstrations: 0.094 / 0.091 against
    0.040 / 0.041."""
    held_out = point_to_point_episodes(20, 1)
    errors = {}
    for rel in ("", "hand"):
        torch.manual_seed(0)
        cfg = bc.Config(hidden=[64, 64], steps=2000, batch_size=64, relative_to=rel, val_fraction=0.0, seed=0)
        errors[rel] = action_error(bc.train(cfg, few_demos, tmp_path / f"r{rel}", progress=False), held_out)
    assert errors["hand"] < 0.12, errors
    assert errors[""] > 1.6 * errors["hand"], errors


@pytest.mark.parametrize("module, options", [(act, {"dim_model": 32, "n_heads": 2, "dim_feedforward": 64}),
                                             (diffusion, {"down_dims": [16]})], ids=["act", "diffusion"])
def test_other_methods_train_and_act_with_offsets(module, options, few_demos, tmp_path):
    cfg = module.Config(steps=2, batch_size=16, relative_to="hand", val_fraction=0.0, **options)
    policy = module.train(cfg, few_demos, tmp_path / "r", progress=False)
    loaded = load_policy(tmp_path / "r")
    assert loaded.config.relative_to == "hand" and loaded.vector_width == 6
    obs = torch.as_tensor(few_demos.observations[:3])[:, None].expand(-1, policy.config.n_obs_steps, -1)
    assert torch.isfinite(loaded.predict(obs)).all()


def test_auto_reads_offsets_where_the_state_names_a_hand_and_other_points(tmp_path):
    def config(names, **kw):
        return MLPConfig(obs_dim=len(names), act_dim=2, **kw,
                         input_features={STATE: {"kind": "state", "shape": [len(names)], "names": names}})

    assert MLPConfig(obs_dim=4, act_dim=2).relative_to == ""  # names not declared
    assert config(STATE_NAMES).relative_to == "hand"  # Meta-World's full state: BC's default reads the offsets
    assert config(STATE_NAMES[:4]).relative_to == ""  # state=proprio: the hand alone
    assert config(["x", "y", "goal_x", "goal_y"]).relative_to == ""  # the built-in reach: no point named hand
    assert config(STATE_NAMES, relative_to="none").relative_to == ""
    assert bc.Config().relative_to == "auto" and act.Config().relative_to == diffusion.Config().relative_to == ""

    # a BC checkpoint from before the field existed read no offsets, and loads so
    policy = MLPPolicy(config(STATE_NAMES, relative_to="none"))
    policy.fit_normalization(np.random.default_rng(0).normal(size=(20, 39)), np.zeros((20, 2)))
    save_policy(policy, tmp_path / "old")
    meta = json.loads((tmp_path / "old/config.json").read_text())
    del meta["config"]["relative_to"]
    (tmp_path / "old/config.json").write_text(json.dumps(meta))
    old = load_policy(tmp_path / "old")
    assert old.config.relative_to == "" and old.relative is None
    x = torch.zeros(2, 1, 39)
    assert torch.equal(old.predict(x), policy.predict(x))


def test_obs_scale_multiplies_what_the_network_reads_and_survives_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(200, 4)).astype(np.float32) * [1, 2, 3, 4]
    x = torch.as_tensor(obs[:5, None])
    read = {}
    for scale in (1.0, 0.25):
        policy = point_policy(obs_scale=scale)
        policy.fit_normalization(obs, rng.uniform(-1, 1, (200, 2)))
        read[scale] = policy.eval().normalize_vector(x)  # the state and the offsets alike
    assert torch.allclose(read[0.25], 0.25 * read[1.0])
    save_policy(policy, tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    assert loaded.config.obs_scale == 0.25 and torch.equal(loaded.predict(x), policy.predict(x))


def test_obs_scale_must_be_positive_and_is_for_supervised_methods():
    with pytest.raises(MimeticError, match="obs_scale must be positive, got 0"):
        MLPConfig(obs_dim=4, act_dim=2, obs_scale=0.0)
    with pytest.raises(MimeticError, match="obs_scale is for the supervised methods"):
        TanhGaussianPolicy(TanhGaussianConfig(obs_dim=4, act_dim=2, obs_scale=0.5))
