"""Insight tools: augmentation, inspect, compare, shift, and the HTML report rendered in a real browser."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mimetic.cli import main
from mimetic.errors import MimeticError

CHROMIUM = "/usr/bin/chromium"
PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------ augmentation
def test_obs_noise_has_the_requested_std_in_normalized_units():
    from mimetic.data.augment import add_obs_noise
    from mimetic.policies.base import Normalizer

    rng = np.random.default_rng(0)
    data = rng.normal(loc=[0.0, 5.0, -3.0], scale=[0.01, 1.0, 100.0], size=(5000, 3))
    norm = Normalizer(3)
    norm.fit(data)
    obs = torch.as_tensor(data[:1000], dtype=torch.float32)[:, None, :].repeat(1, 100, 1)  # 100k samples per dim
    noisy = add_obs_noise(obs, 0.1, norm, torch.Generator().manual_seed(0))
    diff_n = ((noisy - obs) / norm.scale).reshape(-1, 3)
    # sample std of 100k normal draws: relative standard error ~ 0.2%, so 2% is far outside chance
    assert torch.allclose(diff_n.std(0), torch.full((3,), 0.1), rtol=0.02)
    assert diff_n.mean(0).abs().max() < 0.1 * 5 / np.sqrt(100_000)  # within 5 standard errors of 0
    again = add_obs_noise(obs, 0.1, norm, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)  # the generator alone decides the noise
    assert add_obs_noise(obs, 0.0, norm, torch.Generator()) is obs


def test_random_crop_takes_aligned_windows_at_uniform_offsets():
    from mimetic.data.augment import augment_batch, center_crop, random_crop

    B, To, C, H, W = 4000, 2, 3, 6, 5
    img = torch.arange(H * W, dtype=torch.float32).reshape(H, W)
    images = img + 1000 * torch.arange(To * C, dtype=torch.float32).reshape(To, C, 1, 1)  # (To, C, H, W)
    images = images.expand(B, To, C, H, W)
    out = random_crop(images, (4, 3), torch.Generator().manual_seed(1))
    assert out.shape == (B, To, C, 4, 3)
    top_left = out[:, 0, 0, 0, 0].long()
    tops, lefts = top_left // W, top_left % W
    # each crop is the contiguous window at its offset, the same for every frame and channel
    for b in range(0, B, 397):
        t, l = int(tops[b]), int(lefts[b])
        assert torch.equal(out[b], images[b, :, :, t:t + 4, l:l + 3])
    # offsets are uniform over the 3 x 3 possible positions: every count within 5 sigma of B/9
    counts = np.bincount((tops * 3 + lefts).numpy(), minlength=9)
    assert counts.sum() == B and np.all(np.abs(counts - B / 9) < 5 * np.sqrt(B / 9 * 8 / 9))
    assert torch.equal(center_crop(images[:1], 4)[0, 0, 0], img[1:5, 0:4])
    with pytest.raises(MimeticError, match="does not fit"):
        random_crop(images[:2], 7, torch.Generator())
    with pytest.raises(MimeticError, match="expects images"):
        random_crop(torch.zeros(3, 8, 8), 4, torch.Generator())
    batch = {"obs": torch.zeros(2, 1, 3), "image": images[:2]}
    aug = augment_batch(batch, obs_noise=0.0, crop=4, normalizer=None, generator=torch.Generator())
    assert aug["image"].shape[-2:] == (4, 4) and aug["obs"] is batch["obs"] and batch["image"].shape[-1] == W
    with pytest.raises(MimeticError, match="states only"):
        augment_batch({"obs": batch["obs"]}, obs_noise=0.0, crop=4, normalizer=None, generator=torch.Generator())
    with pytest.raises(MimeticError, match=">= 0"):
        augment_batch(batch, obs_noise=-0.1, crop=0, normalizer=None, generator=torch.Generator())


def test_obs_noise_reaches_the_policy_and_is_recorded(reach_demos, tmp_path, capsys, monkeypatch):
    from mimetic.policies.mlp import MLPPolicy

    seen = []
    original = MLPPolicy.loss

    def spy(self, batch):
        if self.training:
            seen.append(batch["obs"].clone())
        return original(self, batch)

    monkeypatch.setattr(MLPPolicy, "loss", spy)
    common = ("--data", reach_demos, "--steps", 1, "--hidden", 16, "--batch-size", 64, "--val-fraction", 0)
    assert run(capsys, "train", "bc", "--out", tmp_path / "clean", *common)[0] == 0
    clean = torch.cat(seen)
    seen.clear()
    assert run(capsys, "train", "bc", "--out", tmp_path / "noisy", *common, "--obs-noise", 0.5)[0] == 0
    noisy = torch.cat(seen)
    info = json.loads((tmp_path / "noisy/train.json").read_text())
    assert info["train"]["obs_noise"] == 0.5 and info["config"]["obs_noise"] == 0.5
    assert json.loads((tmp_path / "clean/train.json").read_text())["train"]["obs_noise"] == 0.0
    # the same seed draws the same first windows, so the difference is the noise: 0.5 std in normalized units
    from mimetic.policies.base import load_policy

    scale = load_policy(tmp_path / "noisy").obs_norm.scale
    d = ((noisy - clean) / scale).reshape(-1)
    assert len(d) == 64 * 6 and abs(float(d.std()) - 0.5) < 0.1  # 384 draws: std error ~ 0.018


# ------------------------------------------------------------------------------ inspect
def test_inspect_matches_the_data_and_writes_plots(reach_demos, tmp_path, capsys):
    from mimetic.data import Dataset

    code, out, _ = run(capsys, "inspect", reach_demos, "--out", tmp_path / "plots", "--json", tmp_path / "i.json")
    assert code == 0 and "50 episodes" in out
    s = json.loads((tmp_path / "i.json").read_text())
    ds = Dataset.load(reach_demos)
    lengths = ds.episode_lengths()
    assert s["episodes"] == 50 and s["frames"] == ds.num_frames
    assert s["length"] == {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())}
    assert s["success_rate"] == float(ds.episode_success().mean())
    np.testing.assert_allclose(s["observation"]["std"], ds.observations.std(0), rtol=1e-5)
    np.testing.assert_allclose(s["action"]["max"], ds.actions.max(0), rtol=1e-6)
    assert set(s["plots"]) == {"observation_hist", "action_hist", "observation_traj", "action_traj"}
    for p in s["plots"].values():
        assert Path(p).read_bytes()[:8] == PNG
    assert run(capsys, "inspect", tmp_path / "missing")[0] == 2


# ------------------------------------------------------------------------------ shift measures
def test_shift_measures_separate_same_from_shifted_distributions():
    from mimetic.analysis.shift import shift_measures

    rng = np.random.default_rng(0)
    expert = rng.normal(size=(2000, 3))
    same = shift_measures(expert, rng.normal(size=(2000, 3)))
    moved = rng.normal(size=(2000, 3))
    moved[:, 0] += 3.0
    far = shift_measures(expert, moved)
    # same distribution: KL ~ 0 (sampling error ~ 1e-3 per dim), coverage and overlap high
    assert same["kl_expert_learner_sum"] < 0.03 and same["kl_learner_expert_sum"] < 0.03
    assert same["learner_in_expert"] > 0.85 and same["expert_in_learner"] > 0.85 and same["pca_overlap"] > 0.75
    # a 3-sigma shift of one dimension: KL = 3^2 / 2 = 4.5 in that dimension (estimate's sd ~ 0.25 with 2000
    # points: the mean difference and the variance ratio both carry sampling error), little coverage or overlap
    assert abs(far["kl_expert_learner"][0] - 4.5) < 1.0 and max(far["kl_expert_learner"][1:]) < 0.03
    # k-NN balls of sparse tail points are wide, so coverage falls slowly with the shift (~0.7-0.9 here)
    assert far["learner_in_expert"] < same["learner_in_expert"] - 0.15 and far["expert_in_learner"] < 0.95
    assert far["pca_overlap"] < 0.3


# ------------------------------------------------------------------------------ compare, shift, report end to end
@pytest.fixture(scope="module")
def compared(reach_demos, tmp_path_factory):
    """bc and a second registry name for bc, 2 training seeds each, 20 eval episodes, 150 steps of a 64x64 MLP."""
    from mimetic.algos import METHODS

    METHODS["bc-copy"] = "mimetic.algos.bc"  # a second method without depending on other families
    try:
        out = tmp_path_factory.mktemp("compare")
        code = main(["-q", "compare", "reach", "--methods", "bc,bc-copy", "--data", str(reach_demos), "--seeds", "0,1",
                     "--episodes", "20", "--steps", "150", "--option", "hidden=[64,64]", "--out", str(out)])
        assert code == 0
    finally:
        del METHODS["bc-copy"]
    return out


def test_compare_table_json_and_plots(compared):
    res = json.loads((compared / "compare.json").read_text())
    assert [r["method"] for r in res["results"]] == ["bc", "bc-copy"]
    evals = [json.loads((compared / "runs" / f"{m}-seed{s}" / "eval.json").read_text())
             for m in ("bc", "bc-copy") for s in (0, 1)]
    assert {(e["seed"], e["episodes"], e["env"]) for e in evals} == {(1_000_000, 20, "reach")}  # the same eval seeds
    for r in res["results"]:
        assert len(r["success_per_seed"]) == 2 and r["episodes_total"] == 40
        lo, hi = r["ci95_pooled"]
        assert lo <= r["success_pooled"] <= hi and np.isclose(r["success_mean"], np.mean(r["success_per_seed"]))
        assert np.isclose(r["success_std"], np.std(r["success_per_seed"], ddof=1))
    # the same method, config and seed gives the same policy and the same paired evaluation
    assert res["results"][0]["success_per_seed"] == res["results"][1]["success_per_seed"]
    assert res["expert"]["success_rate"] == 1.0  # reach's PD expert never fails
    md = (compared / "compare.md").read_text()
    assert "| bc |" in md and "| bc-copy |" in md and "Wilson" in md
    for p in res["plots"].values():
        assert Path(p).read_bytes()[:8] == PNG


def test_compare_shows_seed_spread_and_paired_tests(compared, tmp_path):
    """Per-seed success, a t-interval over training seeds, and paired tests between methods (the same
    method twice: identical paired episodes, no discordant pair, difference 0) in compare.json,
    compare.md and the report."""
    from mimetic.analysis.report import render_report

    res = json.loads((compared / "compare.json").read_text())
    for r in res["results"]:
        rates = r["success_per_seed"]
        assert r["ci95_seeds"] is not None and r["ci95_seeds"][0] <= np.mean(rates) <= r["ci95_seeds"][1]
        assert r["return_comparable"] is True  # reach: minus the distance per step until success
    (p,) = res["paired"]
    assert (p["a"], p["b"], p["a_only"], p["b_only"], p["p_value"]) == ("bc", "bc-copy", 0, 0, 1.0)
    assert p["diff_per_seed"] == [0.0, 0.0] and p["both"] + p["neither"] == 40
    md = (compared / "compare.md").read_text()
    assert "t-interval over seeds" in md and "| bc vs bc-copy |" in md and "McNemar" in md
    page = render_report([compared], tmp_path / "r.html").read_text()
    assert "bc vs bc-copy" in page and "t-interval over seeds" in page and "Mean return:" in page


def test_compare_rerun_reuses_finished_runs_and_rejects_bad_input(compared, reach_demos, tmp_path, capsys):
    before = (compared / "runs/bc-seed0/eval.json").stat().st_mtime_ns
    code, out, _ = run(capsys, "compare", "reach", "--methods", "bc", "--data", reach_demos, "--seeds", "0",
                       "--episodes", 20, "--steps", 150, "--option", "hidden=[64,64]", "--out", compared)
    assert code == 0 and "| bc |" in out
    assert (compared / "runs/bc-seed0/eval.json").stat().st_mtime_ns == before
    code, _, err = run(capsys, "compare", "reach", "--methods", "bc,nope", "--data", reach_demos, "--out", tmp_path / "x")
    assert code == 2 and "nope" in err and not (tmp_path / "x").exists()
    code, _, err = run(capsys, "compare", "reach", "--methods", "bc", "--data", reach_demos, "--seeds", "a",
                       "--out", tmp_path / "x")
    assert code == 2 and "--seeds" in err
    code, _, err = run(capsys, "compare", "reach", "--methods", "bc,bc", "--data", reach_demos, "--out", tmp_path / "x")
    assert code == 2 and "twice" in err
    code, _, err = run(capsys, "compare", "reach", "--methods", "bc", "--data", reach_demos, "--seeds", "0",
                       "--episodes", 20, "--steps", 150, "--option", "hidden=[64,64]", "--option", "obs_noise=0.1",
                       "--out", compared)
    assert code == 2 and "another config" in err  # never reuse a run trained differently
    code, _, err = run(capsys, "compare", "reach", "--methods", "bc", "--data", reach_demos, "--option", "nope=1",
                       "--out", tmp_path / "x")
    assert code == 2 and "no field 'nope'" in err


def test_shift_on_a_trained_run(compared, reach_demos, capsys, tmp_path):
    run_dir = compared / "runs/bc-seed0"
    code, out, _ = run(capsys, "shift", run_dir, "--data", reach_demos, "--episodes", 20, "--json", tmp_path / "s.json")
    assert code == 0 and "learner success" in out
    r = json.loads((tmp_path / "s.json").read_text())
    assert r == json.loads((run_dir / "shift/shift.json").read_text())  # the default --out is RUN/shift
    ev = json.loads((run_dir / "eval.json").read_text())
    assert r["learner"]["success_rate"] == ev["success_rate"]  # same policy, same seeds, same episodes
    assert len(r["state"]["kl_expert_learner"]) == 6 and len(r["action"]["kl_learner_expert"]) == 2
    assert r["reference"]["success_rate"] == 1.0 and "state" in r["reference"]
    assert "skipped" in r["reward"]  # bc learns no reward
    for p in r["plots"].values():
        assert Path(p).read_bytes()[:8] == PNG
    code, _, err = run(capsys, "shift", reach_demos, "--data", reach_demos)
    assert code == 2 and "no policy checkpoint" in err


@pytest.fixture(scope="module")
def report_page(compared, reach_demos, tmp_path_factory) -> str:
    """A report on the comparison, one run (with its evaluation and shift analysis) and the dataset."""
    run_dir = compared / "runs/bc-seed1"
    assert main(["-q", "shift", str(run_dir), "--data", str(reach_demos), "--episodes", "10"]) == 0
    out = tmp_path_factory.mktemp("report") / "r.html"
    assert main(["-q", "report", str(compared), str(run_dir), str(reach_demos), "--out", str(out)]) == 0
    return out.read_text()


def test_report_is_self_contained(report_page, capsys, tmp_path):
    page = report_page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) >= 10 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(href|src)="(https?:|file:|//)', page) and "<link" not in page and "<script" not in page
    assert "Comparison on" in page and "Distribution shift" in page and "Evaluation" in page
    code, _, err = run(capsys, "report", tmp_path, "--out", tmp_path / "bad.html")
    assert code == 2 and "not a training run" in err and not (tmp_path / "bad.html").exists()


PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const d = document.createElement('div');
  d.id = 'probe';
  d.setAttribute('data-images', imgs.length);
  d.setAttribute('data-loaded', imgs.filter(i => i.complete && i.naturalWidth > 0).length);
  d.setAttribute('data-rows', document.querySelectorAll('tbody tr').length);
  document.body.appendChild(d);
});</script>"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report_page, compared, tmp_path):
    page = report_page
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--dump-dom", probe.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    m = re.search(r'<div id="probe" data-images="(\d+)" data-loaded="(\d+)" data-rows="(\d+)"', dom)
    assert m, dom[-2000:]
    images, loaded, rows = map(int, m.groups())
    assert images == page.count("<img ") and images >= 10 and loaded == images  # every image decoded, non-zero width
    assert rows == page.count("<tr>") - page.count("<thead><tr>")
    res = json.loads((compared / "compare.json").read_text())
    for r in res["results"]:  # the comparison table rows made it into the rendered DOM
        lo, hi = r["ci95_pooled"]
        assert f"<td>{r['method']}</td>" in dom and f"[{lo:.3f}, {hi:.3f}]" in dom
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_shift_includes_a_reward_report_when_the_method_has_one(tmp_path, monkeypatch):
    from mimetic.algos import METHODS
    from mimetic.analysis.shift import _reward_report

    (tmp_path / "fake_reward_method.py").write_text(
        "def reward_report(run_dir):\n    return {'pearson': 0.5, 'run': str(run_dir)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(METHODS, "fake-reward", "fake_reward_method")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train.json").write_text(json.dumps({"method": "fake-reward"}))
    assert _reward_report(run_dir, "reach", {}) == {"pearson": 0.5, "run": str(run_dir)}
    (run_dir / "train.json").write_text(json.dumps({"method": "bc"}))
    assert "no learned reward" in _reward_report(run_dir, "reach", {})["skipped"]
    (run_dir / "train.json").write_text(json.dumps({"method": "maxent-irl"}))  # no reward file: skipped, not a crash
    assert "reward_report failed" in _reward_report(run_dir, "reach", {})["skipped"]


def test_report_finds_the_plots_of_a_moved_compare_folder(compared, tmp_path):
    from mimetic.analysis.report import render_report

    moved = tmp_path / "moved"
    moved.mkdir()
    res = json.loads((compared / "compare.json").read_text())
    for p in res["plots"].values():
        shutil.copy(p, moved / Path(p).name)
    res["plots"] = {k: f"/nowhere/{Path(p).name}" for k, p in res["plots"].items()}  # where it used to live
    (moved / "compare.json").write_text(json.dumps(res))
    page = render_report([moved], tmp_path / "r.html").read_text()
    assert page.count('<img alt=') == 2


def test_compare_all_means_the_supervised_methods():
    from mimetic.analysis.compare import supervised_methods

    methods = supervised_methods()
    assert "bc" in methods and "maxent-irl" not in methods  # tabular IRL trains no policy on the offline trainer
