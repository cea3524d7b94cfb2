"""Meta-World comparison of policy families: BC-MLP, BC-GMM, ACT, diffusion, flow
(../shared/BENCHMARK-PROTOCOL.md: 10 scripted demonstrations, 50 evaluation episodes per task).

    python benchmarks/metaworld_methods.py --methods bc-mlp bc-gmm act diffusion flow \\
        --tasks door-open-v3 reach-v3 --demos 10 --episodes 50 \\
        --out benchmarks/results/metaworld_methods.jsonl
    python benchmarks/metaworld_methods.py --images ...     # the image protocol (corner4 84x84, proprio state)

For each task: `--demos` successful expert demonstrations (seeds 0..), each method trained with its
defaults (`Config()`: what `mimetic train METHOD --val-fraction 0` runs) on all of them (final checkpoint;
`--steps` overrides the default number of steps), `--episodes` evaluation episodes on the seeds
1_000_000.. (the same for every method), and the expert on those seeds. Each checkpoint is also
evaluated in its VARIANTS (other sampling steps, ACT's temporal ensembling), every one reported:
none is picked on the evaluation seeds. One JSON line per (task, row) is appended to --out, so an
interrupted run resumes where it stopped (with --work, missing variants reuse the saved checkpoint);
the markdown tables are printed at the end, or alone with --table-only (--bc-from adds the BC rows
of benchmarks/metaworld_bc.py, which uses the same demonstrations and evaluation seeds).

A candidate setting needs no entry in METHODS: `--option KEY=VALUE` (repeatable; VALUE as JSON when it parses,
e.g. `--option future_state=[10,25]`) sets it for every method trained, and `--tag +NAME` names its rows and
run folders (METHOD+NAME), as benchmarks/multitask.py does. Each row records the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from metaworld_bc import DEV_SUITE, GROUP_OF, done_keys, load_or_collect_demos, load_rows, table  # the suite, groups and table of the BC benchmark

BC_BODY = "<the task's bc-mlp body>"  # stands for WORK/<task>/bc-mlp/backbone.safetensors (see backbone_file)
ENV_STATE = "observation.environment_state"  # what the privileged-state candidates learn to predict
METHODS = {  # name: (training method, options): each method's defaults (what `mimetic train METHOD` runs, sized so
    # that one policy trains in a few minutes on one core), BC with the head named; the table's earlier runs used
    # presets identical to today's defaults (benchmarks/results/metaworld_methods.md)
    "bc-mlp": ("bc", dict(head="deterministic")),
    "bc-gmm": ("bc", dict(head="gmm")),
    "bc-mlp-to1": ("bc", dict(head="deterministic", n_obs_steps=1, horizon=1, n_action_steps=1)),  # images: the old default
    "bc-mlp-to2": ("bc", dict(head="deterministic", n_obs_steps=2)),  # a candidate for images: 2 observation steps
    # a candidate for images: 2 observation steps and Diffusion Policy's chunks (16 actions, 8 executed)
    "bc-mlp-chunk": ("bc", dict(head="deterministic", n_obs_steps=2, horizon=16, n_action_steps=8)),
    "bc-mlp-chunk4": ("bc", dict(head="deterministic", n_obs_steps=2, horizon=16, n_action_steps=4)),  # 4 executed
    "bc-mlp-nocrop": ("bc", dict(head="deterministic", crop_ratio=1.0)),  # images: the BC default without the random crop
    "bc-mlp-crop80": ("bc", dict(head="deterministic", crop_ratio=0.8)),  # images: a larger random crop (shift)
    "bc-mlp-ema": ("bc", dict(head="deterministic", ema_decay=0.995)),  # images: weights averaged as diffusion's
    # candidates for images: an auxiliary loss predicting the state 10, 25, 50 and 100 steps ahead (future_state)
    "bc-mlp-fs": ("bc", dict(head="deterministic", future_state=[10, 25, 50, 100])),
    "bc-mlp-fs01": ("bc", dict(head="deterministic", future_state=[10, 25, 50, 100], future_weight=0.1)),
    # candidates for images: the privileged-state loss, predicting where the objects and goal are (aux_state; the
    # demonstrations are then recorded with state=proprio+env, the same episodes, and evaluated as the protocol says)
    "bc-mlp-auxs": ("bc", dict(head="deterministic", aux_state=ENV_STATE)),
    "bc-mlp-auxs01": ("bc", dict(head="deterministic", aux_state=ENV_STATE, aux_state_weight=0.1)),
    "flow-auxs": ("flow", dict(aux_state=ENV_STATE)),
    "diffusion-auxs": ("diffusion", dict(aux_state=ENV_STATE)),
    # the ResNet-18 backbone (GroupNorm, spatial softmax; for GPUs and long runs): timed by benchmarks/visual_cost.py
    "bc-mlp-resnet18": ("bc", dict(head="deterministic", vision_backbone="resnet18")),
    "diffusion-resnet18": ("diffusion", dict(vision_backbone="resnet18")),
    "act": ("act", {}),
    "diffusion": ("diffusion", {}),
    "flow": ("flow", {}),
    # candidates for images: an auxiliary regression head on the FiLM condition (aux_weight)
    "diffusion-aux": ("diffusion", dict(aux_weight=1.0)),
    "flow-aux": ("flow", dict(aux_weight=1.0)),
    "flow-aux10": ("flow", dict(aux_weight=10.0)),
    # candidates for images: 8 noise draws per encoded observation (noise_samples)
    "diffusion-k8": ("diffusion", dict(noise_samples=8)),
    "flow-k8": ("flow", dict(noise_samples=8)),
    "flow-k32": ("flow", dict(noise_samples=32)),
    "diffusion-k32": ("diffusion", dict(noise_samples=32)),
    "flow-k8-aux": ("flow", dict(noise_samples=8, aux_weight=1.0)),
    # candidates for images: the encoder first learns by regression (run with --steps 4000: 2000 + 2000)
    "flow-rw": ("flow", dict(regression_warmup=0.5)),
    "diffusion-rw": ("diffusion", dict(regression_warmup=0.5)),
    # a diagnostic: flow whose conv body starts from the trained bc-mlp run of the same task (list bc-mlp first)
    "flow-bcbody": ("flow", dict(pretrained_backbone=BC_BODY)),
}
# The Meta-World image protocol (issue 12): one fixed camera, LeRobot's view, at 84x84, and a state that holds
# only the robot's own position and gripper, so the policy must find the object and the goal in the image.
IMAGE_PROTOCOL = {"cameras": "corner4", "image_size": 84, "state": "proprio"}
# Variants evaluated on the same checkpoint (rows named e.g. "diffusion-5"; the default's row has the plain
# name): diffusion / flow with other sampling steps, ACT with temporal ensembling (a chunk every step).
VARIANTS = {"diffusion": {"diffusion-5": dict(sampling_steps=5)},
            "flow": {"flow-1": dict(sampling_steps=1), "flow-2": dict(sampling_steps=2)},
            "act": {"act-te": dict(temporal_ensemble=0.1)}}


def backbone_file(bc_run: Path) -> str:
    """The conv body of a trained visual BC run's camera encoder, written once as a weight file beside it."""
    from safetensors.torch import save_file

    from mimetic.policies.base import load_policy

    path = bc_run / "backbone.safetensors"
    if not path.exists():
        if not (bc_run / "model.safetensors").exists():
            raise SystemExit(f"flow-bcbody needs the trained bc-mlp run {bc_run}: list bc-mlp before it in --methods")
        body = load_policy(bc_run).obs_encoder.backbones[0].body
        save_file({k: v.contiguous() for k, v in body.state_dict().items()}, str(path))
    return str(path)


def same_config(run_dir: Path, cfg) -> bool:
    """Whether the run in `run_dir` was trained with exactly cfg's settings (every field of the method config; a
    field the run predates counts as its default or ABSENT value, and `relative_to` "auto" as what it resolved to)."""
    try:
        saved = json.loads((run_dir / "train.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return False
    def as_json(c) -> dict:  # lists and tuples as JSON has them
        return json.loads(json.dumps(dataclasses.asdict(c)))

    wanted = as_json(cfg)
    if wanted.get("relative_to") == "auto" and saved.get("relative_to") != "auto":
        # what "auto" means on this data is what it meant for the run's own policy (the same dataset)
        from mimetic.errors import MimeticError
        from mimetic.features import auto_anchor
        from mimetic.policies.base import load_policy, vector_input_names

        try:
            wanted["relative_to"] = auto_anchor(vector_input_names(load_policy(run_dir).config))
        except (OSError, ValueError, KeyError, MimeticError):  # an unreadable checkpoint is no finished run
            return False
    # a field the run predates was trained at its default (or its ABSENT value): it matches if cfg has that too
    predates = {**as_json(type(cfg)()), **getattr(cfg, "ABSENT", {})}
    return not (any(saved[k] != v for k, v in wanted.items() if k in saved)
                or any(predates.get(k) != v for k, v in wanted.items() if k not in saved))


def finished_run(run_dir: Path, cfg) -> float | None:
    """The training seconds of a run in `run_dir` that finished all of cfg's steps with exactly cfg's settings
    (`same_config`), else None."""
    try:
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
    if not same_config(run_dir, cfg) or last.get("step") != cfg.steps:
        return None
    return float(last.get("time_s", 0.0))


def run(args) -> None:
    from mimetic.algos import method_module
    from mimetic.algos.trainer import resolve_for_dataset
    from mimetic.cli import _parse_options
    from mimetic.envs import make_expert
    from mimetic.evaluate import EVAL_SEED, VAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor, load_policy

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(out)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mw-methods-"))
    env_options = {**IMAGE_PROTOCOL, "image_size": args.image_size} if args.images else {}
    variants = {} if args.no_variants else VARIANTS
    extra = _parse_options(args.option, "--option")  # a candidate's settings, for every method trained
    if (extra or args.expert_noise or args.image_storage) and not args.tag:
        raise SystemExit("--option, --expert-noise and --image-storage need a --tag +NAME for their rows (the "
                         "defaults' rows keep the plain names)")
    label = lambda row: row if row == "expert" else row + args.tag  # noqa: E731  a row's name, the candidate's tag added
    for task in args.tasks:
        env = f"metaworld/{task}"
        rows = {m: [label(m), *map(label, variants.get(m, {}))] for m in ["expert"] + args.methods}
        todo = [m for m, names in rows.items() if any((task, n) not in done for n in names)]
        if not todo:
            continue
        # a DART candidate's demonstrations: the same seeds, noise injected (the clean ones are not needed); evaluation
        # unchanged
        demos = work / task / ("demos" + (f"-noise{args.expert_noise:g}" if args.expert_noise else "")
                               + (f"-{args.image_storage}" if args.image_storage else ""))
        ds = load_or_collect_demos(env, demos, args.demos, env_options, expert_noise=args.expert_noise,
                                   image_storage=args.image_storage)
        for name in todo:
            if name != "expert" and {**METHODS[name][1], **extra}.get("aux_state"):
                if not args.images:
                    raise SystemExit(f"{name}: the privileged-state loss needs --images (the state split as state=proprio+env)")
                # the same episodes, recorded with the rest of the state as observation.environment_state (the target)
                train_ds = load_or_collect_demos(env, work / task / "demos-env", args.demos, {**env_options, "state": "proprio+env"})
            else:
                train_ds = ds
            t0 = time.perf_counter()
            run_dir = work / task / label(name)
            if name == "expert":
                policy, train_s, steps, batch_size = None, 0.0, 0, None
            elif (task, label(name)) in done and (run_dir / "config.json").exists():  # only variants missing: reuse the checkpoint
                policy = load_policy(run_dir)
                main_row = next(r for r in map(json.loads, out.read_text().splitlines())
                                if (r["task"], r["policy"]) == (task, label(name)))
                train_s, steps, batch_size = main_row["train_s"], main_row["steps"], main_row.get("batch_size")
            else:
                method, options = METHODS[name]
                options = {**options, **extra}
                if options.get("pretrained_backbone") == BC_BODY:
                    options = {**options, "pretrained_backbone": backbone_file(work / task / "bc-mlp")}
                module = method_module(method)
                # the defaults (with --images those of a policy that reads cameras), except: all demonstrations
                # train (val_fraction 0, the protocol's 10 demos), logging
                cfg = resolve_for_dataset(module.Config(**options, val_fraction=0.0, seed=args.seed, steps=args.steps,
                                                        batch_size=args.batch_size), train_ds)
                cfg.log_every = cfg.ckpt_every = cfg.steps
                finished = finished_run(run_dir, cfg)
                if finished is not None:  # trained before with these settings (e.g. scored on the other seeds)
                    policy, train_s = load_policy(run_dir), finished
                else:
                    policy = module.train(cfg, train_ds, run_dir, progress=False)
                    train_s = time.perf_counter() - t0
                steps, batch_size = cfg.steps, cfg.batch_size
            default_steps = getattr(getattr(policy, "config", None), "num_inference_steps", None)
            for row_name, opts in [(label(name), {})] + [(label(v), o) for v, o in variants.get(name, {}).items()]:
                if (task, row_name) in done:
                    continue
                if policy is None:
                    actor = make_expert(env, **env_options)
                else:
                    if default_steps:
                        policy.set_sampling_steps(opts.get("sampling_steps", default_steps))
                    actor = PolicyActor(policy, temporal_ensemble=opts.get("temporal_ensemble"))
                t1 = time.perf_counter()
                seed = VAL_SEED if args.seeds == "val" else EVAL_SEED
                res = evaluate(actor, env, args.episodes, seed=seed, num_envs=args.num_envs, env_options=env_options)
                row = {"task": task, "group": GROUP_OF.get(task, "other"), "policy": row_name,
                       "success_rate": res.success_rate, "ci95": list(res.ci95), "episodes": res.episodes,
                       "mean_length": res.mean_length, "demos": ds.num_episodes, "steps": steps,
                       "sampling_steps": opts.get("sampling_steps", default_steps),
                       "temporal_ensemble": opts.get("temporal_ensemble"),
                       "parameters": policy.num_parameters() if policy else 0, "train_s": round(train_s, 1),
                       "batch_size": batch_size if policy else None,  # the resolved value (rows before 2026-11-30: None, the default)
                       "eval_s": round(time.perf_counter() - t1, 1), "env_options": env_options, "seeds": args.seeds,
                       **({"options": extra} if extra and policy is not None else {}),
                       **({"expert_noise": args.expert_noise} if args.expert_noise and policy is not None else {}),
                       **({"image_storage": args.image_storage} if args.image_storage and policy is not None else {})}
                with open(out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--tasks", nargs="+", default=DEV_SUITE)
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: each method's "
                   "default, with --images its image default: 2000, diffusion and flow 4000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="training batch size (default: each method's default; 64 with --images)")
    p.add_argument("--seeds", choices=["eval", "val"], default="eval", help="evaluation seeds (1,000,000..: the "
                   "reported figures) or validation seeds (to choose settings on; write them to their own --out)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-envs", type=int, default=25)
    p.add_argument("--out", default="benchmarks/results/metaworld_methods.jsonl")
    p.add_argument("--work", default="", help="keep datasets and trained runs here (default: a temporary folder)")
    p.add_argument("--bc-from", default="", help="also tabulate bc-mlp / bc-gmm rows from this metaworld_bc.py results file")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--images", action="store_true", help="the image protocol: camera corner4 at 84x84 and the "
                   "proprioception-only state (--env-option cameras=corner4 image_size=84 state=proprio)")
    p.add_argument("--image-size", type=int, default=IMAGE_PROTOCOL["image_size"], help="with --images: the "
                   "camera's side in pixels (a study of the protocol; its figures are at 84; give each size its own --work)")
    p.add_argument("--no-variants", action="store_true", help="evaluate each checkpoint at its defaults only")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="a candidate's setting, for every method "
                   "trained (VALUE as JSON when it parses); needs --tag")
    p.add_argument("--expert-noise", type=float, default=0.0, help="a candidate's demonstrations: DART, the expert's "
                   "action plus this much Gaussian noise executed, its own recorded (needs --tag)")
    p.add_argument("--image-storage", choices=["video", "png"], default=None, help="a candidate's demonstrations: "
                   "camera frames stored as video (the default, AV1) or lossless PNG (needs --tag)")
    p.add_argument("--tag", default="", help="appended to the candidate's row names and run folders, e.g. +fs")
    args = p.parse_args()
    if not args.table_only:
        run(args)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"\ncommit {commit}\n")
    rows = load_rows(Path(args.out))
    policies = ["expert"] + [m + args.tag for m in args.methods]
    if args.bc_from:  # BC rows of benchmarks/metaworld_bc.py (same demonstrations and evaluation seeds)
        have = {(r["task"], r["policy"]) for r in rows}
        rows += [r for r in load_rows(Path(args.bc_from), {"deterministic": "bc-mlp", "gmm": "bc-gmm"})
                 if r["policy"] in ("bc-mlp", "bc-gmm") and (r["task"], r["policy"]) not in have]
        policies = ["expert", "bc-mlp", "bc-gmm"] + [p for p in policies[1:] if p not in ("bc-mlp", "bc-gmm")]
    print(table(rows, policies))
    print("\nvariants of the same checkpoints (diffusion: DDIM steps, default 10; flow: Euler steps, default 4; "
          "act-te: ACT with temporal ensembling, m = 0.1):\n")
    print(table(rows, [v + args.tag for m in args.methods if m in VARIANTS for v in [m, *VARIANTS[m]]]))
    print("\ntraining seconds per policy (median over tasks, one thread, --steps steps):\n")
    for p in policies[1:]:
        ts = sorted(r["train_s"] for r in rows if r["policy"] == p)
        if ts:
            print(f"- {p}: {ts[len(ts) // 2]:.0f} s ({len(ts)} tasks)")


if __name__ == "__main__":
    main()
