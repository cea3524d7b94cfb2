"""Devices on a CPU-only machine: `--device` resolution and its one-line errors, autocast, batch moves, policies
on another device (the meta device: any CPU tensor created inside a policy fails there, as it would on CUDA),
training through the module's forward, and the --device flags of train / eval / dagger / compare.
(tests/test_gpu_smoke.py runs the CUDA paths where a GPU exists.)"""

import dataclasses

import numpy as np
import pytest
import torch

from mimetic import devices
from mimetic.devices import autocast, autocast_dtype, module_device, resolve_device, to_device
from mimetic.errors import MimeticError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors of a machine without CUDA")
FAMILIES = ["mlp", "act", "diffusion", "flow"]


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------- resolving devices
@no_cuda
def test_cuda_without_cuda_is_one_line_naming_the_device_and_what_is_available():
    with pytest.raises(MimeticError) as e:
        resolve_device("cuda")
    msg = one_line(e)
    assert "--device cuda" in msg and "CUDA is not available" in msg and "available: " in msg and "cpu" in msg


def test_auto_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu") and resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(MimeticError, match="--device mps: Apple MPS is not available"):
        resolve_device("mps")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps") and resolve_device("mps") == torch.device("mps")


def test_unknown_devices_and_missing_gpu_indices(monkeypatch):
    for bad in ("tpu", "cuda:x", "cpu:1", "gpu"):
        with pytest.raises(MimeticError) as e:
            resolve_device(bad)
        assert "unknown device" in one_line(e) and "auto, cpu, cuda, mps" in str(e.value)
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(MimeticError, match=r"there is no GPU 2; this machine has 2 \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2")


# ---------------------------------------------------------------------------------- autocast and batches
def test_autocast_is_bf16_on_cuda_only_unless_asked():
    assert autocast_dtype("cpu") is None and autocast_dtype("meta", enabled=True) is None
    assert autocast_dtype("cpu", enabled=True) == torch.bfloat16
    assert autocast_dtype("cpu", enabled=False) is None
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast("cpu"):
        assert (a @ b).dtype == torch.float32
    with autocast("cpu", enabled=True):
        assert (a @ b).dtype == torch.bfloat16


def test_to_device_keeps_dtypes_and_structure():
    frames = torch.randint(0, 255, (2, 3, 8, 8, 3), dtype=torch.uint8)
    batch = {"obs": torch.randn(2, 3, 4), "observation.images.top": frames, "action_pad": torch.zeros(2, 5, dtype=torch.bool),
             "nested": {"x": [torch.ones(1), 3]}}
    same = to_device(batch, "cpu")
    assert same["observation.images.top"] is frames and same["nested"]["x"][1] == 3  # nothing copied
    meta = to_device(batch, torch.device("meta"))
    assert meta["observation.images.top"].dtype == torch.uint8 and meta["observation.images.top"].is_meta
    assert meta["action_pad"].dtype == torch.bool and meta["nested"]["x"][0].is_meta
    assert module_device(torch.nn.Linear(2, 2).to("meta")) == torch.device("meta")
    assert module_device(torch.nn.Identity()) == torch.device("cpu")


# ---------------------------------------------------------------------------------- policies
CAMERA = "observation.images.top"


def _policy(name: str, seed: int = 0, camera: bool = False):
    from mimetic.features import Feature
    from mimetic.policies.base import _policy_class, feature_entry

    cls = _policy_class(name)
    inputs = {"observation.state": feature_entry(Feature("state", "float32", (3,)))}
    if camera:
        inputs[CAMERA] = feature_entry(Feature("image", "uint8", (16, 16, 3)))
    torch.manual_seed(seed)
    return cls(cls.config_class(obs_dim=3, act_dim=2, input_features=inputs))


def _batch(policy, B: int = 4, seed: int = 0) -> dict:
    c = policy.config
    g = torch.Generator().manual_seed(seed)
    out = {"obs": torch.randn(B, c.n_obs_steps, 3, generator=g), "action": torch.randn(B, c.horizon, 2, generator=g),
           "action_pad": torch.zeros(B, c.horizon, dtype=torch.bool)}
    if CAMERA in c.input_features:
        out[CAMERA] = torch.randint(0, 256, (B, c.n_obs_steps, 16, 16, 3), generator=g, dtype=torch.uint8)
    return out


@pytest.mark.parametrize("name", FAMILIES)
def test_calling_the_policy_is_its_loss(name):
    policy = _policy(name).train()
    batch = _batch(policy)
    torch.manual_seed(1)
    want, want_info = policy.loss(batch)
    torch.manual_seed(1)
    got, info = policy(batch)
    assert torch.equal(want, got) and info == want_info and policy.device == torch.device("cpu")


@pytest.mark.parametrize("camera", [False, True], ids=["state", "image"])
@pytest.mark.parametrize("name", FAMILIES)
def test_a_policy_on_another_device_creates_nothing_on_the_cpu(name, camera, monkeypatch):
    """On the meta device every CPU tensor a policy creates in its loss or sampling is an error (as on CUDA)."""
    real_item, real_tolist = torch.Tensor.item, torch.Tensor.tolist  # meta tensors hold no values to read back:
    monkeypatch.setattr(torch.Tensor, "item", lambda t: 0.0 if t.is_meta else real_item(t))  # loss info dicts
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: np.full(t.shape, 0.5).tolist() if t.is_meta else real_tolist(t))
    monkeypatch.setattr(torch.jit, "trace", lambda module, *a, **k: module)  # nor can a meta module be traced
    policy = _policy(name, camera=camera).to("meta")
    assert policy.device == torch.device("meta")
    batch = to_device(_batch(policy), "meta")
    loss, _ = policy.train()(batch)
    assert loss.is_meta and loss.shape == ()
    obs = {k: v for k, v in _batch(policy).items() if k in ("obs", CAMERA)}  # on the CPU: predict moves its inputs
    out = policy.eval().predict(obs if camera else obs["obs"], generators=policy.generators(range(4)))
    assert out.is_meta and tuple(out.shape) == (4, policy.config.horizon, 2)


@pytest.mark.parametrize("camera", [False, True], ids=["state", "image"])
@pytest.mark.parametrize("name", FAMILIES)
def test_policies_run_under_cpu_bf16_autocast(name, camera):
    policy = _policy(name, camera=camera).train()
    with autocast("cpu", enabled=True):
        loss, _ = policy(_batch(policy))
    assert torch.isfinite(loss)
    loss.float().backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 for g in grads)  # weights stay float32


# ---------------------------------------------------------------------------------- training and checkpoints
@pytest.fixture(scope="module")
def small_reach(tmp_path_factory):
    from mimetic.collect import collect
    from mimetic.data import Dataset

    root = tmp_path_factory.mktemp("devices") / "demos"
    collect("reach", root, 6, seed=0, progress=False)
    return Dataset.load(root)


def test_training_goes_through_forward_and_the_device_does_not_change_the_weights(small_reach, tmp_path, monkeypatch):
    """Every training and validation loss is a call of the module (what DDP and other wrappers hook); `device`
    cpu and auto (cpu here) give the same weights, step for step."""
    from mimetic.algos import bc
    from mimetic.policies.base import Policy

    calls = {"n": 0}
    real = Policy.forward

    def spy(self, batch):
        calls["n"] += 1
        return real(self, batch)

    monkeypatch.setattr(Policy, "forward", spy)
    cfg = dict(hidden=[32, 32], steps=12, batch_size=16, log_every=6, obs_noise=0.05)
    auto = bc.train(bc.Config(**cfg), small_reach, tmp_path / "auto", progress=False)
    assert calls["n"] >= 12 + 2  # the 12 steps, then at least one validation batch per logged row
    cpu = bc.train(bc.Config(**cfg, device="cpu"), small_reach, tmp_path / "cpu", progress=False)
    for (k, a), b in zip(auto.state_dict().items(), cpu.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(MimeticError, match="--device tpu"):
        bc.train(bc.Config(**cfg, device="tpu"), small_reach, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()  # refused before the run folder is made


def test_training_under_bf16_autocast(small_reach, tmp_path, monkeypatch):
    """The trainer's autocast path (CUDA's default) forced on for the CPU: finite losses, float32 weights."""
    from mimetic.algos import bc, trainer
    from mimetic.algos.run_dir import read_metrics

    monkeypatch.setattr(trainer, "autocast", lambda device: devices.autocast(device, enabled=True))
    policy = bc.train(bc.Config(hidden=[32, 32], steps=20, batch_size=16, log_every=10), small_reach, tmp_path / "r",
                      progress=False)
    rows = read_metrics(tmp_path / "r")
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in rows)
    assert all(p.dtype == torch.float32 for p in policy.parameters())


def test_load_policy_on_a_device(small_reach, tmp_path):
    from mimetic.algos import bc
    from mimetic.policies.base import load_policy

    trained = bc.train(bc.Config(hidden=[16], steps=3, batch_size=8), small_reach, tmp_path / "r", progress=False)
    policy = load_policy(tmp_path / "r", device="cpu")
    assert policy.device == torch.device("cpu") and not policy.training
    obs = torch.as_tensor(small_reach.observations[:4, None], dtype=torch.float32)
    assert torch.allclose(policy.predict(obs), trained.predict(obs))
    assert load_policy(tmp_path / "r").device == torch.device("cpu")  # the default
    with pytest.raises(MimeticError, match="--device tpu: unknown device"):
        load_policy(tmp_path / "r", device="tpu")


# ---------------------------------------------------------------------------------- the CLI
def _run(capsys, *argv):
    from mimetic.cli import main

    code = main(["-q", *map(str, argv)])
    return code, *capsys.readouterr()


def _one_line_error(code, err, *needles):
    assert code == 2 and err.count("\n") == 1 and err.startswith("mimetic: error: "), err
    for n in needles:
        assert n in err, err


def test_device_flags_exist_on_train_eval_dagger_compare():
    from mimetic.cli import build_parser

    for argv in (["train", "bc", "--out", "r", "--device", "cpu"], ["eval", "r", "--device", "cpu"],
                 ["dagger", "reach", "--out", "r", "--device", "cpu"],
                 ["compare", "reach", "--methods", "bc", "--data", "d", "--out", "o", "--device", "cpu"]):
        assert build_parser(argv).parse_args(argv).device == "cpu"
    assert build_parser(["eval", "r"]).parse_args(["eval", "r"]).device == "auto"


@no_cuda
def test_device_cuda_without_cuda_is_one_line_on_every_verb(small_reach, tmp_path, capsys):
    from mimetic.algos import bc

    bc.train(bc.Config(hidden=[16], steps=2, batch_size=8), small_reach, tmp_path / "r", progress=False)
    data = small_reach.root
    _one_line_error(*_run(capsys, "eval", tmp_path / "r", "--episodes", 2, "--device", "cuda")[::2], "--device cuda")
    _one_line_error(*_run(capsys, "train", "bc", "--data", data, "--out", tmp_path / "t", "--device", "cuda")[::2],
                    "--device cuda", "available: ")
    assert not (tmp_path / "t").exists()
    _one_line_error(*_run(capsys, "dagger", "reach", "--out", tmp_path / "g", "--device", "cuda")[::2], "--device cuda")
    assert not (tmp_path / "g").exists()
    _one_line_error(*_run(capsys, "compare", "reach", "--methods", "bc", "--data", data, "--seeds", 0, "--out",
                          tmp_path / "c", "--device", "cuda")[::2], "--device cuda")
    assert not (tmp_path / "c").exists()


def test_device_passes_through(small_reach, tmp_path, capsys, monkeypatch):
    """--device reaches the trainer (train, compare, dagger) and load_policy (eval, compare, dagger)."""
    from mimetic.algos import trainer
    from mimetic.policies import base

    trained_on, loaded_on = [], []
    real_train, real_load = trainer.train_policy, base.load_policy

    def train_spy(policy, dataset, cfg, *a, **k):
        trained_on.append(cfg.device)
        return real_train(policy, dataset, cfg, *a, **k)

    def load_spy(directory, device=None):
        loaded_on.append(device)
        return real_load(directory, device=device)

    monkeypatch.setattr(trainer, "train_policy", train_spy)
    monkeypatch.setattr(base, "load_policy", load_spy)
    data = small_reach.root
    assert _run(capsys, "train", "bc", "--data", data, "--out", tmp_path / "t", "--steps", 2, "--hidden", 8,
                "--device", "cpu")[0] == 0
    assert trained_on == ["cpu"]
    # resuming may move a run to another device (where it runs is not what it learns); other options may not change
    assert _run(capsys, "train", "bc", "--out", tmp_path / "t", "--resume", "--steps", 3, "--device", "auto")[0] == 0
    assert trained_on[-1] == "auto"
    assert _run(capsys, "eval", tmp_path / "t", "--episodes", 2, "--num-envs", 2, "--device", "cpu")[0] == 0
    assert "cpu" in loaded_on
    trained_on.clear(), loaded_on.clear()
    assert _run(capsys, "compare", "reach", "--methods", "bc", "--data", data, "--seeds", 0, "--episodes", 2,
                "--steps", 2, "--out", tmp_path / "c", "--device", "cpu")[0] == 0
    assert trained_on == ["cpu"] and loaded_on == ["cpu"]
    # a finished comparison is reused on another device (not retrained, not refused)
    assert _run(capsys, "compare", "reach", "--methods", "bc", "--data", data, "--seeds", 0, "--episodes", 2,
                "--steps", 2, "--out", tmp_path / "c", "--device", "auto")[0] == 0
    assert trained_on == ["cpu"]
    trained_on.clear(), loaded_on.clear()
    assert _run(capsys, "dagger", "reach", "--out", tmp_path / "g", "--data", data, "--iterations", 1,
                "--episodes-per-iter", 2, "--steps", 2, "--eval-episodes", 2, "--num-envs", 2, "--device", "cpu")[0] == 0
    assert trained_on == ["cpu", "cpu"]  # iterations 0 and 1
    assert "cpu" in loaded_on and set(loaded_on) <= {"cpu", None}  # None: a checkpoint only copied (on the CPU)


def test_dagger_config_device_survives_resume_and_can_change():
    from mimetic.algos.dagger import DaggerConfig, _method_config

    cfg = DaggerConfig(env="reach", device="cpu")
    assert _method_config(cfg)[1].device == "cpu"
    assert _method_config(dataclasses.replace(cfg, policy_options={"device": "auto"}))[1].device == "auto"
    with pytest.raises(MimeticError, match="--device nope"):
        DaggerConfig(env="reach", device="nope").validate()


def test_cpu_allocator_keeps_freed_memory():
    """On glibc the trainer asks malloc to keep freed memory (large image activations otherwise cost fresh
    pages every step); it is idempotent, and elsewhere a no-op that says so."""
    import platform

    from mimetic.devices import keep_cpu_allocations

    applied = keep_cpu_allocations()
    assert keep_cpu_allocations() == applied
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applied
