"""Training and acting keyed by observation feature: policy input features, old checkpoints, windows with
camera frames, the actor on dict observations, and the trainer's choice of features (fast)."""

import json

import numpy as np
import pytest
import torch

from mimetic.algos import bc
from mimetic.algos.trainer import TrainConfig
from mimetic.data import Dataset, Episode
from mimetic.data.windows import WindowSampler, window_index
from mimetic.errors import MimeticError
from mimetic.features import ENV_STATE, PRIVILEGED_STATE, STATE, image_key, image_feature, state_feature
from mimetic.policies.base import (PolicyActor, check_compatible, load_policy, normalize_images, save_policy,
                                   vector_input_keys)
from mimetic.policies.diffusion import DiffusionConfig, DiffusionPolicy
from mimetic.policies.mlp import MLPConfig, MLPPolicy

TOP = image_key("top")


def fitted(policy, d, a, seed=0):
    rng = np.random.default_rng(seed)
    policy.fit_normalization(rng.normal(size=(50, d)) * 3 + 1, rng.uniform(-1, 1, (50, a)))
    return policy


def roll(actor, obs_seq):
    actor.reset(len(obs_seq[0][STATE] if isinstance(obs_seq[0], dict) else obs_seq[0]), seeds=[3, 4, 5])
    return np.stack([actor.act(o) for o in obs_seq])


# ------------------------------------------------------------------------------ config and checkpoints
@pytest.mark.parametrize("make", [
    lambda: fitted(MLPPolicy(MLPConfig(obs_dim=4, act_dim=2, hidden=[16], n_obs_steps=2, horizon=3)), 4, 2),
    lambda: fitted(DiffusionPolicy(DiffusionConfig(obs_dim=4, act_dim=2, down_dims=[16], horizon=8)), 4, 2),
], ids=["mlp", "diffusion"])
def test_old_checkpoint_without_input_features_loads_and_acts_the_same(make, tmp_path):
    torch.manual_seed(0)
    policy = make().eval()
    assert policy.config.input_features == {STATE: {"kind": "state", "shape": [4], "names": None}}
    save_policy(policy, tmp_path / "new")
    save_policy(policy, tmp_path / "old")
    meta = json.loads((tmp_path / "old/config.json").read_text())
    del meta["config"]["input_features"]  # a checkpoint of the release before input features
    (tmp_path / "old/config.json").write_text(json.dumps(meta))
    old, new = load_policy(tmp_path / "old"), load_policy(tmp_path / "new")
    assert old.config.input_features == new.config.input_features == policy.config.input_features
    obs = torch.randn(5, policy.config.n_obs_steps, 4, generator=torch.Generator().manual_seed(1))
    gens = lambda: policy.generators(range(5))  # noqa: E731
    assert torch.equal(old.predict(obs, gens()), policy.predict(obs, gens()))
    seq = [np.random.default_rng(t).normal(size=(3, 4)).astype(np.float32) for t in range(6)]
    assert np.array_equal(roll(PolicyActor(old), seq), roll(PolicyActor(policy), seq))


def test_input_features_saved_and_checked(tmp_path):
    feats = {STATE: {"kind": "state", "shape": [3], "names": ["x", "y", "z"]},
             ENV_STATE: {"kind": "environment_state", "shape": [2], "names": None}}
    policy = MLPPolicy(MLPConfig(obs_dim=5, act_dim=2, hidden=[8], input_features=feats))
    save_policy(policy, tmp_path / "p")
    assert json.loads((tmp_path / "p/config.json").read_text())["config"]["input_features"] == feats
    assert vector_input_keys(load_policy(tmp_path / "p").config) == [STATE, ENV_STATE]
    with pytest.raises(MimeticError, match="obs_dim is 4 but"):
        MLPConfig(obs_dim=4, act_dim=2, input_features=feats)


# ------------------------------------------------------------------------------ the actor
def test_actor_on_dict_observations_with_extra_keys_acts_as_on_the_array():
    torch.manual_seed(0)
    policy = fitted(MLPPolicy(MLPConfig(obs_dim=4, act_dim=2, hidden=[16], n_obs_steps=2, horizon=4, n_action_steps=2)), 4, 2)
    seq = [np.random.default_rng(t).normal(size=(3, 4)).astype(np.float32) for t in range(7)]
    frames = np.random.default_rng(9).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    dicts = [{STATE: s, TOP: frames, PRIVILEGED_STATE: np.ones((3, 11), np.float32)} for s in seq]
    assert np.array_equal(roll(PolicyActor(policy), dicts), roll(PolicyActor(policy), seq))
    ens = [PolicyActor(policy, temporal_ensemble=0.1) for _ in range(2)]
    assert np.array_equal(roll(ens[0], dicts), roll(ens[1], seq))


def test_actor_concatenates_vector_features_in_input_order():
    feats = {STATE: {"kind": "state", "shape": [3], "names": None},
             ENV_STATE: {"kind": "environment_state", "shape": [2], "names": None}}
    torch.manual_seed(0)
    policy = fitted(MLPPolicy(MLPConfig(obs_dim=5, act_dim=2, hidden=[16], input_features=feats)), 5, 2)
    rng = np.random.default_rng(0)
    s, e = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32)
    act = PolicyActor(policy).act({ENV_STATE: e, TOP: np.zeros((4, 8, 8, 3), np.uint8), STATE: s})
    expected = policy.predict(torch.as_tensor(np.concatenate([s, e], 1))[:, None])[:, 0].numpy()
    assert np.allclose(act, expected)


def test_actor_refuses_missing_keys_and_wrong_shapes_in_one_line():
    feats = {STATE: {"kind": "state", "shape": [3], "names": None}, ENV_STATE: {"kind": "environment_state", "shape": [2], "names": None}}
    actor = PolicyActor(MLPPolicy(MLPConfig(obs_dim=5, act_dim=2, hidden=[8], input_features=feats)))
    s = np.zeros((2, 3), np.float32)
    for obs, words in [({STATE: s}, "'observation.environment_state'"), (s, "'observation.environment_state'"),
                       ({STATE: np.zeros((2, 4)), ENV_STATE: np.zeros((2, 2))}, "'observation.state' observations of size 3"),
                       ({STATE: s, ENV_STATE: np.zeros((3, 2))}, "different batch sizes")]:
        with pytest.raises(MimeticError, match=words) as e:
            actor.act(obs)
        assert "\n" not in str(e.value)
    with pytest.raises(MimeticError, match="of size 3, the environment gives 5"):
        PolicyActor(MLPPolicy(MLPConfig(obs_dim=3, act_dim=2, hidden=[8]))).act(np.zeros((2, 5)))


def test_check_compatible_takes_sizes_or_features():
    policy = MLPPolicy(MLPConfig(obs_dim=3, act_dim=2, hidden=[8]))
    check_compatible(policy, 3, 2, "here")
    with pytest.raises(MimeticError, match="size 3 and actions of size 2"):
        check_compatible(policy, 4, 2, "here")
    feats = {STATE: state_feature(3), TOP: image_feature(8, 8), "action": state_feature(2, kind="action")}
    check_compatible(policy, feats, None, "here")
    with pytest.raises(MimeticError, match="actions of size 2, but there are 5"):
        check_compatible(policy, feats, 5, "here")
    with pytest.raises(MimeticError, match="'observation.state' of shape \\(3,\\), but it has shape \\(4,\\)"):
        check_compatible(policy, {STATE: state_feature(4)}, 2, "here")
    with pytest.raises(MimeticError, match="missing"):
        check_compatible(policy, {TOP: image_feature(8, 8)}, 2, "here")


def test_images_are_scaled_fixed_not_by_statistics():
    frames = torch.tensor([[[[0, 255, 51]] * 2] * 3], dtype=torch.uint8)  # (1, H=3, W=2, C=3)
    x = normalize_images(frames)
    assert x.shape == (1, 3, 3, 2) and x.dtype == torch.float32
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([-1.0, 1.0, 51 / 255 * 2 - 1]))
    with pytest.raises(MimeticError, match="uint8"):
        normalize_images(frames.float())


# ------------------------------------------------------------------------------ windows
def test_window_sampler_keeps_images_uint8_and_obs_as_before():
    rng = np.random.default_rng(0)
    starts, ends = np.array([0, 6]), np.array([6, 10])
    state = rng.normal(size=(10, 3)).astype(np.float32)
    actions = rng.normal(size=(10, 2)).astype(np.float32)
    frames = rng.integers(0, 256, (10, 4, 5, 3), dtype=np.uint8)
    index = window_index(starts, ends, n_obs_steps=2, horizon=3)
    rows = np.array([0, 1, 2, 6, 7])
    old = WindowSampler(state, actions, index, rows)
    new = WindowSampler({STATE: state, TOP: frames}, actions, index, rows)
    assert new.images[TOP].data_ptr() == frames.ctypes.data  # shares the frames, no float copy
    picks = torch.tensor([0, 3, 4, 1])
    a, b = old.batch(picks), new.batch(picks)
    for k in ("obs", "action", "action_pad"):
        assert torch.equal(a[k], b[k])
    assert b[TOP].dtype == torch.uint8 and b[TOP].shape == (4, 2, 4, 5, 3)
    assert np.array_equal(b[TOP].numpy(), frames[index.obs_idx[rows[picks.numpy()]]])
    assert np.array_equal(b[TOP][2, 0].numpy(), frames[6])  # episode start repeats
    both = WindowSampler({STATE: state, ENV_STATE: state[:, :1] * 2}, actions, index)
    assert torch.equal(both.batch(picks)["obs"][..., :3], WindowSampler(state, actions, index).batch(picks)["obs"])
    with pytest.raises(MimeticError, match="uint8"):
        WindowSampler({STATE: state, TOP: frames.astype(np.float32)}, actions, index)


# ------------------------------------------------------------------------------ training
def camera_dataset(root, with_state=True, n=4, T=12):
    rng = np.random.default_rng(0)
    eps = []
    for i in range(n):
        obs = {TOP: rng.integers(0, 256, (T, 6, 6, 3), dtype=np.uint8)}
        if with_state:
            obs[STATE] = rng.normal(size=(T, 3))
            obs[ENV_STATE] = rng.normal(size=(T, 2))
        eps.append(Episode(obs, rng.uniform(-1, 1, (T, 2)), np.zeros(T), np.arange(T) == T - 1))
    return Dataset.create(root, eps, image_storage="png")


def test_training_on_state_and_cameras_uses_every_feature(tmp_path, capsys):
    ds = camera_dataset(tmp_path / "d")
    policy = bc.train(bc.Config(hidden=[8], steps=3, log_every=3, batch_size=8), ds, tmp_path / "r", progress=False)
    assert "not used" not in capsys.readouterr().err
    assert list(policy.config.input_features) == [STATE, ENV_STATE, TOP] and policy.config.obs_dim == 5
    assert policy.obs_encoder.output_dim == 5 + policy.config.vision_dim
    assert list(load_policy(tmp_path / "r").config.input_features) == [STATE, ENV_STATE, TOP]
    expected = np.concatenate([ds.frames(STATE), ds.frames(ENV_STATE)], 1)
    train = json.loads((tmp_path / "r/train.json").read_text())
    frames = np.concatenate([np.arange(ds.episode_starts[e], ds.episode_ends[e]) for e in train["train_episodes"]])
    assert np.allclose(policy.obs_norm.shift.numpy(), expected[frames].mean(0), atol=1e-5)
    obs = {STATE: ds.frames(STATE)[:3], ENV_STATE: ds.frames(ENV_STATE)[:3], TOP: ds.frames(TOP)[:3]}
    a = PolicyActor(policy).act(obs)
    assert a.shape == (3, 2) and np.array_equal(a, PolicyActor(load_policy(tmp_path / "r")).act(obs))
    with pytest.raises(MimeticError, match="'observation.images.top'"):
        PolicyActor(policy).act({STATE: obs[STATE], ENV_STATE: obs[ENV_STATE]})

    only = bc.train(bc.Config(hidden=[8], steps=1, obs_keys=ENV_STATE), ds, tmp_path / "r2", progress=False)
    assert list(only.config.input_features) == [ENV_STATE] and only.config.obs_dim == 2
    assert only.obs_encoder.output_dim == 2 and not list(only.obs_encoder.parameters())


def test_training_on_cameras_only(tmp_path):
    ds = camera_dataset(tmp_path / "d", with_state=False)
    policy = bc.train(bc.Config(hidden=[8], steps=2, batch_size=8), ds, tmp_path / "r", progress=False)
    assert list(policy.config.input_features) == [TOP] and policy.config.obs_dim == 0
    assert PolicyActor(policy).act({TOP: ds.frames(TOP)[:2]}).shape == (2, 2)
    chosen = bc.train(bc.Config(hidden=[8], steps=1, obs_keys=TOP), camera_dataset(tmp_path / "d2"), tmp_path / "r2",
                      progress=False)
    assert list(chosen.config.input_features) == [TOP]


def test_random_crop_sets_the_encoder_crop_and_needs_cameras(tmp_path):
    ds = camera_dataset(tmp_path / "d")
    policy = bc.train(bc.Config(hidden=[8], steps=1, random_crop=4), ds, tmp_path / "r", progress=False)
    assert policy.obs_encoder.crop_sizes(TOP) == (4, 4) and policy.config.crop_ratio == pytest.approx(4 / 6)
    with pytest.raises(MimeticError, match="needs camera features") as e:
        bc.train(bc.Config(steps=1, random_crop=4, obs_keys=STATE), ds, tmp_path / "r2", progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(MimeticError, match="does not fit"):
        bc.train(bc.Config(steps=1, random_crop=7), ds, tmp_path / "r3", progress=False)


def test_obs_keys_unknown_key_lists_the_dataset_keys(tmp_path, capsys):
    from mimetic.cli import main

    assert "obs_keys" in {f.name for f in __import__("dataclasses").fields(TrainConfig)}
    ds = camera_dataset(tmp_path / "d")
    code = main(["-q", "train", "bc", "--data", str(ds.root), "--out", str(tmp_path / "r"), "--steps", "1",
                 "--obs-keys", "observation.state,observation.gripper"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "'observation.gripper'" in err[0] and all(k in err[0] for k in (STATE, ENV_STATE, TOP))
