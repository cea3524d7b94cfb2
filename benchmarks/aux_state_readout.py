"""What a policy trained with the privileged-state loss (`--aux-state observation.environment_state`) reads from
its camera: the error of its privileged-state head on frames it never trained on (issue 12, a diagnostic).

For each RUN (a Meta-World image-protocol run of `metaworld_methods.py`, with `aux_state` (e.g. `--methods
bc-mlp-auxs`) or without (then its task's `demos-env` folder, the same episodes with their environment state,
gives the training targets)): the scripted expert runs `--episodes` successful episodes of the run's task on the validation seeds
2,000,000.. (camera and image size as the run's, `state=proprio+env`), and the run's demonstrations are read
back from its dataset (the training frames). On both, the run's encoder (center crop, as at evaluation) and its
head predict the environment state; reported is the mean Euclidean error in millimetres of the object (Meta-World
state 4:7) and goal (36:39) positions, beside predicting the training mean (what a blind encoder can do); and the
same for a linear readout fitted by least squares on the frozen encoder's training-frame encodings (how much
the encoder holds, whatever it was trained for: a policy trained without the loss has only this). A head
that reads the test frames much better than the blind guess has an encoder that localises on new positions; a
policy that still fails there fails for another reason.

    python benchmarks/aux_state_readout.py --runs WORK/coffee-push-v3/bc-mlp-auxs WORK/stick-pull-v3/bc-mlp-auxs \
        --episodes 10 --work /tmp/readout --out F
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mimetic.envs.render import setup_gl
from mimetic.evaluate import VAL_SEED

PROPRIO = 4  # Meta-World's proprioceptive state: the first 4 numbers; the environment state is the rest
TARGETS = {"object": slice(4 - PROPRIO, 7 - PROPRIO), "goal": slice(36 - PROPRIO, 39 - PROPRIO)}


def encodings(policy, ds) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(the encoded current observation, the true environment state (raw units), the head's prediction (raw units;
    None without a head)) for every frame of `ds`."""
    from mimetic.data.windows import WindowSampler, window_index
    from mimetic.features import ENV_STATE

    c = policy.config
    index = window_index(ds.episode_starts, ds.episode_ends, c.n_obs_steps, c.horizon, c.action_start)
    windows = WindowSampler({k: ds.frames(k) for k in c.input_features}, ds.actions, index,
                            aux_state=ds.frames(ENV_STATE))
    enc, pred, true = [], [], []
    policy.eval()
    with torch.no_grad():
        for b in windows.iterate(256):
            e = policy.encode(b)[:, -1, :policy.obs_encoder.output_dim]
            enc.append(e)
            true.append(b["aux_state"])
            if policy.aux_state_head is not None:
                pred.append(policy.aux_state_norm.inverse(policy.aux_state_head(e)))
    return torch.cat(enc).numpy(), torch.cat(true).numpy(), torch.cat(pred).numpy() if pred else None


def linear_readout(train_enc, train_true, test_enc, ridge: float = 1e-3) -> np.ndarray:
    """A least-squares linear map from the frozen encodings to the state, fitted on the training frames, applied to
    `test_enc` (what a linear head could read from an encoder whatever it was trained for)."""
    X = np.hstack([train_enc, np.ones((len(train_enc), 1))])
    W = np.linalg.solve(X.T @ X + ridge * len(X) * np.eye(X.shape[1]), X.T @ train_true)
    return np.hstack([test_enc, np.ones((len(test_enc), 1))]) @ W


def errors_mm(pred: np.ndarray, true: np.ndarray, mean: np.ndarray) -> dict:
    out = {}
    for name, sl in TARGETS.items():
        out[f"{name}_mm"] = round(float(np.linalg.norm(pred[:, sl] - true[:, sl], axis=1).mean() * 1000), 1)
        out[f"{name}_blind_mm"] = round(float(np.linalg.norm(mean[sl] - true[:, sl], axis=1).mean() * 1000), 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="run folders trained with aux_state on a Meta-World task")
    p.add_argument("--episodes", type=int, default=10, help="validation-seed episodes of the scripted expert per task")
    p.add_argument("--work", required=True, help="where the validation episodes are recorded (reused)")
    p.add_argument("--out", required=True, help="JSON lines, one per run")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    setup_gl()
    torch.set_num_threads(args.threads)
    from mimetic.collect import collect
    from mimetic.data import Dataset
    from mimetic.errors import MimeticError
    from mimetic.policies.base import load_policy

    for run in map(Path, args.runs):
        policy = load_policy(run)
        c = policy.config
        if not str(c.env).startswith("metaworld/"):
            raise SystemExit(f"{run}: trained on {c.env}, not a Meta-World task")
        options = {**c.env_options, "state": "proprio+env"}
        root = Path(args.work) / c.env.split("/")[1] / "val-episodes"
        test = (Dataset.load(root) if (root / "meta/info.json").exists() else
                collect(c.env, root, args.episodes, seed=VAL_SEED, only_success=True, progress=False, env_options=options))
        train_root = json.loads((run / "train.json").read_text())["dataset"]
        if policy.aux_state_head is None:  # the same episodes recorded with the environment state, beside its own
            train_root = Path(train_root).parent / "demos-env"
        try:
            train = Dataset.load(train_root)
        except MimeticError as e:
            raise SystemExit(f"{run}: the training episodes with their environment state cannot be read ({e})") from None
        (tr_enc, tr_true, tr_pred), (te_enc, te_true, te_pred) = encodings(policy, train), encodings(policy, test)
        mean = tr_true.mean(0)
        row = {"run": str(run), "task": c.env.split("/")[1], "episodes": test.num_episodes,
               "linear_readout": {"train": errors_mm(linear_readout(tr_enc, tr_true, tr_enc), tr_true, mean),
                                  "test": errors_mm(linear_readout(tr_enc, tr_true, te_enc), te_true, mean)}}
        if tr_pred is not None:
            row["head"] = {"train": errors_mm(tr_pred, tr_true, mean), "test": errors_mm(te_pred, te_true, mean)}
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
