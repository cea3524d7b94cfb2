"""Observation encoders: the output-size contract, spatial-softmax keypoints, crops (random while training, center
at inference), ResNet-18 with GroupNorm, backbone weights from a local file, shared vs per-camera backbones, and
checkpoints of a release without vision fields (fast)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from mimetic.errors import MimeticError
from mimetic.features import STATE, image_key
from mimetic.policies.base import PolicyActor, PolicyConfig, load_policy, normalize_images, save_policy
from mimetic.policies.encoders import ObservationEncoder, ResNet18GN, SpatialSoftmax
from mimetic.policies.mlp import MLPConfig, MLPPolicy

TOP, WRIST = image_key("top"), image_key("wrist")


def features(state=3, cams=((TOP, 16, 16),)):
    out = {STATE: {"kind": "state", "shape": [state], "names": None}} if state else {}
    out.update({k: {"kind": "image", "shape": [h, w, 3], "names": None} for k, h, w in cams})
    return out


def frames(B, To, h, w, seed=0):
    return torch.randint(0, 256, (B, To, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("backbone,pool", [("conv", "spatial_softmax"), ("conv", "attention"), ("resnet18", "spatial_softmax")])
def test_output_dim_is_what_forward_returns(backbone, pool):
    torch.manual_seed(0)
    cfg = PolicyConfig(obs_dim=3, input_features=features(3, ((TOP, 16, 16), (WRIST, 12, 20))), vision_backbone=backbone,
                       vision_pool=pool, vision_dim=10)
    enc = ObservationEncoder(cfg).eval()
    assert enc.output_dim == 3 + 2 * 10
    obs_n = torch.randn(4, 2, 3)
    out = enc(obs_n, {TOP: frames(4, 2, 16, 16), WRIST: frames(4, 2, 12, 20)})
    assert out.shape == (4, 2, enc.output_dim)
    assert torch.equal(out[..., :3], obs_n)  # vector features pass through, first
    state_only = ObservationEncoder(PolicyConfig(obs_dim=3))
    assert state_only.output_dim == 3 and n_params(state_only) == 0 and state_only(obs_n) is obs_n


def test_spatial_softmax_keypoints_are_expected_coordinates():
    torch.manual_seed(0)
    ss = SpatialSoftmax(8, num_kp=5)
    fmap = torch.randn(3, 8, 6, 7)
    att = ss.attention(fmap)
    assert torch.allclose(att.sum(-1), torch.ones(3, 5))
    kp = ss(fmap)
    assert kp.shape == (3, 10) and kp.abs().max() <= 1.0
    with torch.no_grad():  # one hot spot: every keypoint sits on it
        ss.kp.weight.fill_(1.0)
        ss.kp.bias.zero_()
    hot = torch.zeros(1, 8, 5, 5)
    hot[0, :, 4, 1] = 50.0  # row 4 (y = +1), column 1 (x = -0.5)
    kp = ss(hot)[0]
    assert torch.allclose(kp[:5], torch.full((5,), -0.5), atol=1e-4) and torch.allclose(kp[5:], torch.ones(5), atol=1e-4)


def test_crop_is_random_while_training_and_the_center_at_inference():
    cfg = PolicyConfig(obs_dim=0, input_features=features(0, ((TOP, 20, 20),)), crop_ratio=0.8)
    enc = ObservationEncoder(cfg)
    x = frames(64, 2, 20, 20)
    enc.train()
    torch.manual_seed(1)
    a = enc.prepare(TOP, x)
    b = enc.prepare(TOP, x)
    assert a.shape == (128, 3, 16, 16) and not torch.equal(a, b)
    torch.manual_seed(1)
    assert torch.equal(enc.prepare(TOP, x), a)  # the run's seed decides the crops
    # each sample's frames share one offset: the history stays aligned
    full = normalize_images(x)
    a = a.reshape(64, 2, 3, 16, 16)
    for i in range(0, 64, 9):
        hits = [(t, l) for t in range(5) for l in range(5) if torch.equal(full[i, :, :, t:t + 16, l:l + 16], a[i])]
        assert len(hits) == 1
    enc.eval()
    c1, c2 = enc.prepare(TOP, x), enc.prepare(TOP, x)
    assert torch.equal(c1, c2) and torch.equal(c1, full[:, :, :, 2:18, 2:18].reshape(128, 3, 16, 16))
    off = ObservationEncoder(PolicyConfig(obs_dim=0, input_features=features(0, ((TOP, 20, 20),)), crop_ratio=1.0)).train()
    assert torch.equal(off.prepare(TOP, x), full.reshape(128, 3, 20, 20))  # ratio 1: no crop at all


def test_color_jitter_only_while_training():
    cfg = PolicyConfig(obs_dim=0, input_features=features(0, ((TOP, 8, 8),)), crop_ratio=1.0, color_jitter=0.3)
    enc = ObservationEncoder(cfg)
    x = frames(16, 1, 8, 8)
    jittered = enc.train().prepare(TOP, x)
    assert not torch.equal(jittered, normalize_images(x).reshape(16, 3, 8, 8)) and jittered.abs().max() <= 1.0
    assert torch.equal(enc.eval().prepare(TOP, x), normalize_images(x).reshape(16, 3, 8, 8))
    with pytest.raises(MimeticError, match="color_jitter"):
        ObservationEncoder(PolicyConfig(obs_dim=0, input_features=features(0), color_jitter=1.5))
    with pytest.raises(MimeticError, match="crop_ratio"):
        ObservationEncoder(PolicyConfig(obs_dim=0, input_features=features(0), crop_ratio=0.0))
    with pytest.raises(MimeticError, match="vision_backbone must be one of conv, resnet18"):
        ObservationEncoder(PolicyConfig(obs_dim=0, input_features=features(0), vision_backbone="vit"))


def test_conv_width_stride_and_keypoints_shape_the_encoder():
    cams = features(0, ((TOP, 20, 20),))
    base = ObservationEncoder(PolicyConfig(obs_dim=0, input_features=cams, crop_ratio=1.0)).eval()
    x = frames(2, 1, 20, 20)
    assert base.feature_maps({TOP: x})[0].shape == (2, 1, 32, 10, 10)  # the default: 32 channels, first stride 2
    wide = ObservationEncoder(PolicyConfig(obs_dim=0, input_features=cams, crop_ratio=1.0, vision_channels=48,
                                           vision_stride=1, vision_keypoints=7)).eval()
    assert wide.feature_maps({TOP: x})[0].shape == (2, 1, 48, 20, 20)  # full resolution
    assert wide.backbones[0].pool.kp.out_channels == 7 and wide.backbones[0].proj[0].in_features == 14
    assert wide(torch.zeros(2, 1, 0), {TOP: x}).shape == (2, 1, wide.output_dim)
    normed = ObservationEncoder(PolicyConfig(obs_dim=0, input_features=cams, vision_norm="group"))
    assert sum(isinstance(m, nn.GroupNorm) for m in normed.modules()) == 4
    odd = ObservationEncoder(PolicyConfig(obs_dim=0, input_features=cams, vision_norm="group", vision_channels=50))
    assert odd(torch.zeros(2, 1, 0), {TOP: x}).shape == (2, 1, odd.output_dim)  # any width has a valid group count
    assert not any(isinstance(m, nn.GroupNorm) for m in base.modules())
    # without norms the body's parameter names are those of checkpoints written before these options existed
    assert [k for k in base.backbones[0].body.state_dict() if k.endswith("weight")] == [f"net.{i}.weight" for i in (0, 2, 4, 6)]
    for bad, match in ((dict(vision_stride=3), "vision_stride must be 1 or 2"),
                       (dict(vision_norm="batch"), "vision_norm must be one of none, group"),
                       (dict(vision_channels=0), "vision_channels must be >= 1"),
                       (dict(vision_keypoints=0), "vision_keypoints must be >= 1")):
        with pytest.raises(MimeticError, match=match):
            ObservationEncoder(PolicyConfig(obs_dim=0, input_features=cams, **bad))


def test_wrong_frames_are_one_line_errors():
    enc = ObservationEncoder(PolicyConfig(obs_dim=0, input_features=features(0, ((TOP, 8, 8),))))
    with pytest.raises(MimeticError, match="uint8"):
        enc.prepare(TOP, frames(2, 1, 8, 8).float())
    with pytest.raises(MimeticError, match=r"expected frames of shape \(8, 8, 3\), got \(9, 8, 3\)"):
        enc.prepare(TOP, frames(2, 1, 9, 8))


def test_resnet18_uses_group_norm_not_batch_norm():
    net = ResNet18GN()
    kinds = {type(m) for m in net.modules()}
    assert nn.GroupNorm in kinds and not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)
    assert 11.1e6 < n_params(net) < 11.2e6  # ResNet-18 without its classifier
    out = net.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 512, 2, 2)


def test_backbone_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    cfg = PolicyConfig(obs_dim=0, input_features=features(0, ((TOP, 32, 32), (WRIST, 32, 32))), vision_backbone="resnet18")
    torch.manual_seed(0)
    src = ResNet18GN()
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    enc = ObservationEncoder(cfg)
    enc.load_pretrained(tmp_path / "w.safetensors")
    for b in enc.backbones:
        assert all(torch.equal(p, src.state_dict()[k]) for k, p in b.body.state_dict().items())
    # torchvision's names and extras: BatchNorm running statistics and the classifier are skipped
    tv = {**{k: v + 1 for k, v in src.state_dict().items()}, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000),
          "bn1.running_mean": torch.zeros(64), "bn1.running_var": torch.ones(64), "bn1.num_batches_tracked": torch.tensor(0)}
    torch.save(tv, tmp_path / "tv.pth")
    enc.load_pretrained(tmp_path / "tv.pth")
    assert torch.equal(enc.backbones[0].body.conv1.weight, src.conv1.weight + 1)
    # a file for another network: one line naming the file
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "bad.pt")
    for bad, words in [("bad.pt", "does not match the ResNet18GN backbone"), ("missing.pt", "not found")]:
        with pytest.raises(MimeticError, match=words) as e:
            enc.load_pretrained(tmp_path / bad)
        assert "\n" not in str(e.value) and bad in str(e.value)
    (tmp_path / "junk.pt").write_bytes(b"not a weight file")
    with pytest.raises(MimeticError, match="cannot read") as e:
        enc.load_pretrained(tmp_path / "junk.pt")
    assert "\n" not in str(e.value)


def test_pretrained_backbone_is_read_when_training_starts_not_when_loading(tmp_path):
    from safetensors.torch import save_file

    from mimetic.algos import bc
    from tests.test_features_training import camera_dataset

    ds = camera_dataset(tmp_path / "d")
    body = ObservationEncoder(PolicyConfig(obs_dim=0, input_features=features(0, ((TOP, 6, 6),)))).backbones[0].body
    weights = {k: torch.full_like(v, 0.01) for k, v in body.state_dict().items()}
    save_file(weights, str(tmp_path / "conv.safetensors"))
    cfg = bc.Config(hidden=[8], steps=1, lr=1e-9, pretrained_backbone=str(tmp_path / "conv.safetensors"))
    policy = bc.train(cfg, ds, tmp_path / "r", progress=False)
    w = policy.obs_encoder.backbones[0].body.net[0].weight
    assert torch.allclose(w, torch.full_like(w, 0.01), atol=1e-6)
    (tmp_path / "conv.safetensors").unlink()
    assert torch.equal(load_policy(tmp_path / "r").obs_encoder.backbones[0].body.net[0].weight, w)


def test_shared_backbone_has_one_set_of_weights():
    cams = ((TOP, 16, 16), (WRIST, 12, 12))
    per = ObservationEncoder(PolicyConfig(obs_dim=3, input_features=features(3, cams)))
    shared = ObservationEncoder(PolicyConfig(obs_dim=3, input_features=features(3, cams), shared_backbone=True))
    one = ObservationEncoder(PolicyConfig(obs_dim=3, input_features=features(3, cams[:1])))
    assert n_params(per) == 2 * n_params(one) and n_params(shared) == n_params(one) > 0
    assert per.output_dim == shared.output_dim == 3 + 2 * 64
    out = shared.eval()(torch.zeros(2, 1, 3), {TOP: frames(2, 1, 16, 16), WRIST: frames(2, 1, 12, 12)})
    assert out.shape == (2, 1, shared.output_dim)


def test_image_policy_checkpoint_and_actor_with_history(tmp_path):
    torch.manual_seed(0)
    policy = MLPPolicy(MLPConfig(obs_dim=3, act_dim=2, hidden=[16], n_obs_steps=2, input_features=features(3))).eval()
    save_policy(policy, tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    assert loaded.config.vision_backbone == "conv" and loaded.obs_encoder.output_dim == 3 + 64
    rng = np.random.default_rng(0)
    seq = [{STATE: rng.normal(size=(3, 3)).astype(np.float32), TOP: rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)}
           for _ in range(4)]
    a, b = PolicyActor(policy), PolicyActor(loaded)
    acts = [a.act(o) for o in seq]
    assert all(np.array_equal(x, b.act(o)) for x, o in zip(acts, seq))
    # the actor's history (the first frame repeated) is what predict sees
    first = {"obs": torch.as_tensor(seq[0][STATE])[:, None].repeat(1, 2, 1), TOP: torch.as_tensor(seq[0][TOP])[:, None].repeat(1, 2, 1, 1, 1)}
    assert np.allclose(acts[0], policy.predict(first)[:, 0].numpy())
    with pytest.raises(MimeticError, match="uint8 frames of shape"):
        PolicyActor(policy).act({STATE: seq[0][STATE], TOP: seq[0][TOP].astype(np.float32)})


def test_old_checkpoint_without_vision_fields_loads_and_acts_the_same(tmp_path):
    torch.manual_seed(0)
    policy = MLPPolicy(MLPConfig(obs_dim=4, act_dim=2, hidden=[16], head="gmm")).eval()
    policy.fit_normalization(np.random.default_rng(0).normal(size=(50, 4)), np.random.default_rng(1).normal(size=(50, 2)))
    save_policy(policy, tmp_path / "old")
    meta = json.loads((tmp_path / "old/config.json").read_text())
    for k in ("vision_backbone", "vision_pool", "vision_dim", "shared_backbone", "crop_ratio", "color_jitter",
              "pretrained_backbone"):
        del meta["config"][k]  # a checkpoint of the release before encoders
    (tmp_path / "old/config.json").write_text(json.dumps(meta))
    old = load_policy(tmp_path / "old")
    obs = torch.randn(5, 1, 4)
    assert torch.equal(old.predict(obs), policy.predict(obs))
    assert set(old.state_dict()) == set(policy.state_dict()) and not any(k.startswith("obs_encoder") for k in old.state_dict())


def test_crops_draw_from_the_run_seed_and_resume_exactly(tmp_path, monkeypatch):
    from mimetic.algos import bc
    from mimetic.data import windows
    from tests.test_features_training import camera_dataset

    ds = camera_dataset(tmp_path / "d")
    cfg = dict(hidden=[8], batch_size=8, steps=6, log_every=2, ckpt_every=2, color_jitter=0.2, crop_ratio=0.7)
    straight = bc.train(bc.Config(**cfg), ds, tmp_path / "a", progress=False)
    real_sample, calls = windows.WindowSampler.sample, {"n": 0}

    def dying_sample(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # killed after the checkpoint of step 2 and one more step
        return real_sample(self, *a, **k)

    monkeypatch.setattr(windows.WindowSampler, "sample", dying_sample)
    with pytest.raises(KeyboardInterrupt):
        bc.train(bc.Config(**cfg), ds, tmp_path / "b", progress=False)
    monkeypatch.setattr(windows.WindowSampler, "sample", real_sample)
    torch.manual_seed(123)  # whatever ran in between, the checkpoint restores the generator the crops draw from
    resumed = bc.train(bc.Config(**cfg), ds, tmp_path / "b", resume=True, progress=False)
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k
    other = bc.train(bc.Config(**cfg, seed=1), ds, tmp_path / "c", progress=False)
    assert not torch.equal(other.obs_encoder.backbones[0].proj[0].weight, straight.obs_encoder.backbones[0].proj[0].weight)


@pytest.mark.parametrize("family", ["mlp-gmm", "act", "diffusion", "flow"])
def test_every_tensor_of_a_training_step_is_made_on_the_policy_device(family, monkeypatch):
    """On the meta device (no data, any device mismatch raises): a CPU tensor made inside the encoder, the crop, the
    jitter or a head would fail here as it fails on CUDA."""
    from mimetic.policies.act import ACTConfig, ACTPolicy
    from mimetic.policies.diffusion import DiffusionConfig, DiffusionPolicy
    from mimetic.policies.flow import FlowConfig, FlowPolicy

    cls, cfg = {"mlp-gmm": (MLPPolicy, MLPConfig(obs_dim=3, act_dim=2, head="gmm", sample=True, input_features=features(3))),
                "act": (ACTPolicy, ACTConfig(obs_dim=3, act_dim=2, input_features=features(3))),
                "diffusion": (DiffusionPolicy, DiffusionConfig(obs_dim=3, act_dim=2, down_dims=[16], input_features=features(3))),
                "flow": (FlowPolicy, FlowConfig(obs_dim=3, act_dim=2, down_dims=[16], input_features=features(3),
                                                vision_pool="attention"))}[family]
    cfg.color_jitter = 0.1
    policy = cls(cfg).to("meta").train()
    B, c = 4, policy.config
    batch = {"obs": torch.zeros(B, c.n_obs_steps, 3), TOP: frames(B, c.n_obs_steps, 16, 16),
             "action": torch.zeros(B, c.horizon, 2), "action_pad": torch.zeros(B, c.horizon, dtype=torch.bool)}
    monkeypatch.setattr(torch.Tensor, "item", lambda self: 0.0)  # the logged numbers: meta tensors hold no data
    loss, _ = policy({k: v.to("meta") for k, v in batch.items()})
    assert loss.device.type == "meta"
    if family in ("mlp-gmm", "act"):  # CPU inputs: the policy moves them (diffusion / flow sampling reads numbers)
        assert policy.eval().predict(batch).device.type == "meta"


def test_future_state_settings_are_checked():
    from mimetic.policies.act import ACTConfig, ACTPolicy

    with pytest.raises(MimeticError, match="future_state must be whole steps >= 1"):
        MLPPolicy(MLPConfig(obs_dim=3, act_dim=2, future_state=[0]))
    with pytest.raises(MimeticError, match="future_weight >= 0"):
        MLPPolicy(MLPConfig(obs_dim=3, act_dim=2, future_state=[5], future_weight=-1.0))
    with pytest.raises(MimeticError, match="future_state needs a policy that pools"):
        ACTPolicy(ACTConfig(obs_dim=3, act_dim=2, future_state=[5]))
    assert MLPPolicy(MLPConfig(obs_dim=3, act_dim=2)).future_head is None
    assert MLPPolicy(MLPConfig(obs_dim=3, act_dim=2, future_state=[5, 9])).future_head.out_features == 6
