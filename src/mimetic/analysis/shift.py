"""`mimetic shift RUN --data DIR`: how far the states a learned policy visits drift from the
expert's (the covariate shift behind compounding errors in behavioral cloning).

All measures work in the expert's normalized units (z-scores of the dataset's states):
- per-dimension Gaussian KL, both directions: KL(expert || learner) grows when the learner misses
  states the expert visits, KL(learner || expert) when the learner goes where the expert never was;
- k-NN coverage (the "precision / recall" of Kynkäänniemi et al. 2019): the fraction of learner
  states inside the k-NN ball of some expert state (`learner_in_expert`), and of expert states
  inside the k-NN ball of some learner state (`expert_in_learner`); the balls of sparse tail states
  are wide, so coverage falls slowly (2000 states of a 3-d Gaussian shifted 3 sigma along one axis
  still leave ~0.7 covered, against ~0.99 unshifted);
- occupancy overlap: the histogram intersection (0..1) of expert and learner states on a grid over
  the top-2 principal components of both sets pooled (pooled, so a direction only the learner
  drifts along is seen).

Finite samples alone give non-zero KL and coverage below 1, so when the environment has a scripted
expert the same measures are computed for fresh expert rollouts on the same seeds (`reference`):
the learner's figures mean something only next to those.

Where the run has a learned reward and its method provides `reward_report(run_dir)` (MaxEnt IRL
does), its reward-recovery metrics are included; otherwise `reward` says why it was skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimetic.data.io import atomic_write_json, read_json
from mimetic.errors import MimeticError
from mimetic.features import state_only_note

K = 5  # neighbours for the k-NN radius
GRID = 20  # cells per axis of the PCA occupancy grid
MAX_POINTS = 20_000  # states subsampled per side for the k-NN measures (memory, time)
STD_FLOOR = 1e-3  # in normalized units, so constant dimensions do not blow the KL up


def gaussian_kl(mu_p: np.ndarray, sd_p: np.ndarray, mu_q: np.ndarray, sd_q: np.ndarray) -> np.ndarray:
    """KL(N(mu_p, sd_p^2) || N(mu_q, sd_q^2)) per dimension."""
    return np.log(sd_q / sd_p) + (sd_p**2 + (mu_p - mu_q) ** 2) / (2 * sd_q**2) - 0.5


def knn_coverage(reference: np.ndarray, query: np.ndarray, k: int = K) -> float:
    """Fraction of `query` points inside the ball around some `reference` point whose radius is the
    distance to that point's k-th nearest other reference point."""
    from scipy.spatial import cKDTree

    if len(reference) <= k or len(query) == 0:
        return float("nan")
    tree = cKDTree(reference)
    radius = tree.query(reference, k=k + 1)[0][:, -1]  # neighbour 0 is the point itself
    m = min(len(reference), 64)
    dist, idx = tree.query(query, k=m)
    return float(np.mean((dist <= radius[idx]).any(axis=1)))


def occupancy_overlap(a: np.ndarray, b: np.ndarray, basis: np.ndarray, centre: np.ndarray, bins: int = GRID) -> float:
    """Histogram intersection of a and b projected on `basis` (d, 2), on a bins x bins grid spanning both."""
    pa, pb = (a - centre) @ basis, (b - centre) @ basis
    both = np.concatenate([pa, pb])
    lo, hi = np.quantile(both, 0.005, axis=0), np.quantile(both, 0.995, axis=0)
    hi = np.where(hi > lo, hi, lo + 1e-6)
    edges = [np.linspace(lo[j], hi[j], bins + 1) for j in range(2)]
    ha = np.histogram2d(*np.clip(pa, lo, hi).T, bins=edges)[0]
    hb = np.histogram2d(*np.clip(pb, lo, hi).T, bins=edges)[0]
    return float(np.minimum(ha / ha.sum(), hb / hb.sum()).sum())


def pca_basis(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-2 principal directions (d, 2) and centre of a and b pooled, each set weighted equally."""
    centre = (a.mean(0) + b.mean(0)) / 2
    cov = ((a - centre).T @ (a - centre) / len(a) + (b - centre).T @ (b - centre) / len(b)) / 2
    w, v = np.linalg.eigh(cov)
    basis = v[:, ::-1][:, :2]
    if basis.shape[1] < 2:
        basis = np.concatenate([basis, np.zeros((len(basis), 2 - basis.shape[1]))], axis=1)
    return basis, centre


def _subsample(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= MAX_POINTS else x[rng.choice(len(x), MAX_POINTS, replace=False)]


def shift_measures(expert: np.ndarray, learner: np.ndarray, seed: int = 0) -> dict:
    """All measures between two state sets (N, d), in the expert's normalized units."""
    mu, sd = expert.mean(0), expert.std(0)
    sd = np.where(sd < 1e-6, 1.0, sd)
    e, l = (expert - mu) / sd, (learner - mu) / sd
    me, se = e.mean(0), np.maximum(e.std(0), STD_FLOOR)
    ml, sl = l.mean(0), np.maximum(l.std(0), STD_FLOOR)
    kl_el, kl_le = gaussian_kl(me, se, ml, sl), gaussian_kl(ml, sl, me, se)
    rng = np.random.default_rng(seed)
    basis, centre = pca_basis(e, l)
    es, ls = _subsample(e, rng), _subsample(l, rng)
    return {
        "kl_expert_learner": kl_el.tolist(),
        "kl_learner_expert": kl_le.tolist(),
        "kl_expert_learner_sum": float(kl_el.sum()),
        "kl_learner_expert_sum": float(kl_le.sum()),
        "learner_in_expert": knn_coverage(es, ls),
        "expert_in_learner": knn_coverage(ls, es),
        "pca_overlap": occupancy_overlap(e, l, basis, centre),
        "states": [len(expert), len(learner)],
    }


def _reward_report(run: Path, env: str, env_options: dict) -> dict:
    """Reward-recovery metrics when the run learned a reward its method can score; else {'skipped': why}.

    Dispatches like `mimetic reward`: maxent-irl -> `mimetic.algos.irl.reward_report`, gail/airl ->
    `mimetic.algos.adversarial.report.reward_report`, any other method module with a `reward_report(run_dir)`.
    """
    import importlib

    try:
        info = read_json(run / "train.json", "training run")
    except MimeticError:
        info = {}
    method = info.get("method")
    try:
        if method == "maxent-irl":
            from mimetic.algos.irl import reward_report

            return reward_report(run)
        if method in ("gail", "airl"):
            reward_report = importlib.import_module("mimetic.algos.adversarial.report").reward_report
            return reward_report(run, env=env, env_options=env_options)
        from mimetic.algos import METHODS, method_module

        module = method_module(method) if method in METHODS else None
        if module is None or not hasattr(module, "reward_report"):
            return {"skipped": f"run {run} has no learned reward (method {method!r})"}
        return module.reward_report(run)
    except (MimeticError, ImportError, FileNotFoundError, KeyError, AttributeError, TypeError) as err:
        return {"skipped": f"reward_report failed: {err}"}


def shift(run: str | Path, data: str | Path, env: str | None = None, *, episodes: int = 50, out: str | Path | None = None,
          env_options: dict | None = None, seed: int | None = None, reference: bool = True, progress: bool = False) -> dict:
    """Roll out the policy in `run` for `episodes` episodes and measure its state shift from the dataset `data`."""
    from mimetic.data.dataset import Dataset
    from mimetic.evaluate import EVAL_SEED, summarize
    from mimetic.policies.base import PolicyActor, check_compatible, load_policy
    from mimetic.rollout import rollout

    run = Path(run)
    if not (run / "config.json").exists():
        raise MimeticError(f"{run} holds no policy checkpoint (config.json); shift needs a policy to roll out")
    if episodes < 1:
        raise MimeticError(f"shift: --episodes must be >= 1, got {episodes}")
    seed = EVAL_SEED if seed is None else seed
    policy = load_policy(run)
    ds = Dataset.load(data)
    if ds.num_frames == 0:
        raise MimeticError(f"dataset {ds.root} has no frames to compare with")
    env = env or policy.config.env or ds.env_name
    if env is None:
        raise MimeticError("shift: --env ENV is required (neither the run nor the dataset names its environment)")
    if env_options is None:
        env_options = dict(policy.config.env_options) if env == policy.config.env else ds.env_options if env == ds.env_name else {}
    note = state_only_note(ds.observation_keys, "shift", f"dataset {ds.root}")
    if note:
        print(f"{note} (drift is measured on the state and the actions; camera frames are not compared)")
    check_compatible(policy, ds.obs_dim, ds.act_dim, str(run))
    seeds = range(seed, seed + episodes)
    learner = rollout(env, PolicyActor(policy), seeds, env_options=env_options, progress=progress, desc="shift: learner")
    l_obs = np.concatenate([ep.observations for ep in learner])
    l_act = np.concatenate([np.asarray(ep.actions, np.float64).reshape(len(ep), -1) for ep in learner])
    if l_obs.shape[1] != ds.obs_dim:
        raise MimeticError(f"environment {env!r} gives {l_obs.shape[1]}-d states, dataset {ds.root} holds {ds.obs_dim}-d ones")
    res = summarize(learner, seed=seed, env=env)
    result = {
        "run": str(run.resolve()), "dataset": str(Path(data).resolve()), "env": env, "env_options": env_options,
        "episodes": episodes, "seed": seed, "features_compared": ["observation.state", "action"],
        "cameras_not_compared": ds.image_keys,
        "learner": {"success_rate": res.success_rate, "ci95": list(res.ci95), "mean_return": res.mean_return,
                    "mean_length": res.mean_length},
        "state": shift_measures(ds.observations, l_obs),
        "action": shift_measures(ds.actions, l_act),
        "reference": None,
        "reward": _reward_report(run, env, env_options),
        "plots": {},
    }
    x_obs = None
    if reference:
        from mimetic.envs import make_expert

        try:
            expert = make_expert(env, **env_options)
        except MimeticError as err:
            result["reference"] = {"skipped": str(err)}
        else:
            ref = rollout(env, expert, seeds, env_options=env_options, progress=progress, desc="shift: expert")
            x_obs = np.concatenate([ep.observations for ep in ref])
            x_act = np.concatenate([np.asarray(ep.actions, np.float64).reshape(len(ep), -1) for ep in ref])
            r = summarize(ref, seed=seed, env=env)
            result["reference"] = {"success_rate": r.success_rate, "ci95": list(r.ci95),
                                   "state": shift_measures(ds.observations, x_obs), "action": shift_measures(ds.actions, x_act)}
    if out is not None:
        from mimetic.analysis import plots

        out = Path(out)
        mu, sd = ds.observations.mean(0), ds.observations.std(0)
        sd = np.where(sd < 1e-6, 1.0, sd)
        basis, centre = pca_basis((ds.observations - mu) / sd, (l_obs - mu) / sd)
        pts = {"expert (data)": ds.observations, "learner": l_obs}
        if x_obs is not None:
            pts["expert (same seeds)"] = x_obs
        rng = np.random.default_rng(0)
        result["plots"] = {
            "state_hist": str(plots.histograms(out / "state_hist.png", {"expert": ds.observations, "learner": l_obs},
                                               f"{env}: states, expert vs learner", "obs")),
            "action_hist": str(plots.histograms(out / "action_hist.png", {"expert": ds.actions, "learner": l_act},
                                                f"{env}: actions, expert vs learner", "act")),
            "state_pca": str(plots.scatter2d(out / "state_pca.png",
                                             {k: ((_subsample(v, rng) - mu) / sd - centre) @ basis for k, v in pts.items()},
                                             f"{env}: states on the top-2 principal components")),
        }
        if isinstance(result["reward"].get("plot"), str):
            result["plots"]["reward"] = result["reward"]["plot"]
        atomic_write_json(out / "shift.json", result)
    return result


def format_shift(r: dict) -> str:
    """The human summary printed by `mimetic shift`."""
    ln = r["learner"]
    lines = [f"{r['run']} on {r['env']}: learner success {ln['success_rate']:.3f} "
             f"[95% CI {ln['ci95'][0]:.3f}, {ln['ci95'][1]:.3f}] over {r['episodes']} episodes (seed {r['seed']})",
             f"{'':<22}{'learner':>10}{'expert ref':>12}"]
    ref = r["reference"] if r["reference"] and "state" in r["reference"] else None
    for part in ("state", "action"):
        for key, label in (("kl_expert_learner_sum", "KL(expert||.) sum"), ("kl_learner_expert_sum", "KL(.||expert) sum"),
                           ("learner_in_expert", "in expert k-NN"), ("expert_in_learner", "expert covered"),
                           ("pca_overlap", "PCA-grid overlap")):
            v = r[part][key]
            rv = f"{ref[part][key]:>12.3f}" if ref else f"{'-':>12}"
            lines.append(f"{part + ' ' + label:<22}{v:>10.3f}{rv}")
    rw = r["reward"]
    if "skipped" in rw:
        lines.append(f"reward recovery: skipped ({rw['skipped']})")
    else:
        lines.append("reward recovery: " + ", ".join(f"{k} {v:.3f}" for k, v in rw.items() if isinstance(v, float)))
    for k, p in r["plots"].items():
        lines.append(f"plot {k}: {p}")
    return "\n".join(lines)
