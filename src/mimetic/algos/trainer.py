"""The offline trainer every supervised policy uses (BC, ACT, diffusion, flow).

It draws random windows from the training episodes, steps AdamW with a warmup + cosine schedule,
optionally keeps an EMA of the weights, logs train/val loss (and, if asked, rollout success on
validation seeds) to RUN/metrics.jsonl, and checkpoints everything needed to resume exactly:

```
RUN/config.json, RUN/model.safetensors   the policy (EMA weights if EMA is on): `mimetic eval RUN`
RUN/train.json                           what was trained on and how (read back by --resume)
RUN/metrics.jsonl                        one JSON object per logged step (time_s: training seconds so far)
RUN/checkpoint/                          training state: weights, EMA, optimizer, RNGs, step
```

The policy reads the observation features in its config's `input_features`: by default every
observation feature of the dataset (state and all cameras), or those `--obs-keys` names; cameras go
through the policy's observation encoder (`mimetic.policies.encoders`), a dataset of cameras alone
trains too. Crop augmentation lives in the encoder (random while training, center at inference):
`--crop-ratio` (default 0.9 of each side; 1 = off) or `--random-crop SIZE` (SIZE pixels of the
shorter side of the smallest camera, the same fraction of every side: it sets the crop ratio).
A `--pretrained-backbone FILE` is loaded into the vision backbones when a fresh run starts.

This is the run-directory convention of `mimetic.algos.run_dir` (shared by every training loop):
a kill loses at most the steps since the last checkpoint; `resume=True` continues from there exactly
and drops metric rows logged after it, so the metrics file never holds duplicates.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mimetic import distributed as dist
from mimetic.algos.run_dir import RunDir
from mimetic.data.augment import add_obs_noise, augment_batch
from mimetic.data.dataset import Dataset
from mimetic.data.windows import DemoBank, WindowSampler, task_balanced_weights, vector_input, window_index
from mimetic.devices import autocast, keep_cpu_allocations, resolve_device, rng_state, set_rng_state, to_device
from mimetic.errors import MimeticError
from mimetic.features import Feature, comma_keys
from mimetic.progress import progress_bar
from mimetic.policies.base import (Policy, PolicyActor, aux_state_keys, check_compatible, feature_entry, save_policy,
                                   vector_input_keys)


@dataclass
class TrainConfig:
    steps: int = 5000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    lr_schedule: str = "cosine"  # cosine | constant
    grad_clip: float = 10.0
    ema_decay: float = 0.0  # 0 = off; e.g. 0.999 for diffusion
    val_fraction: float = 0.1  # fraction of episodes held out for the validation loss
    log_every: int = 250
    ckpt_every: int = 1000
    eval_every: int = 0  # steps between rollouts on validation seeds (0 = off)
    eval_episodes: int = 20
    seed: int = 0
    obs_noise: float = 0.0  # augmentation: Gaussian observation noise, std in normalized units (0 = off)
    random_crop: int = 0  # crop camera frames to SIZE pixels (sets the policy's crop_ratio; 0 = use --crop-ratio)
    task_sampling: str = "frames"  # frames (every frame alike) | tasks (every task alike, for multi-task data)
    obs_keys: str = ""  # observation features to train on, comma-separated (default: every one the policy can read)
    device: str = "auto"  # auto | cpu | cuda | mps (auto: cuda, else mps, else cpu); bf16 autocast on CUDA


TASK_SAMPLING = ("frames", "tasks")


def split_episodes(num_episodes: int, val_fraction: float, seed: int,
                   tasks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle episode indices with `seed`; hold out round(val_fraction * n) (at least 1 if any) for validation.

    With `tasks` (each episode's task index) the held-out episodes are taken in turn from each task (in the
    shuffled order), so every task loses the same number, give or take one (a plain shuffle can take 3 of a task's
    10 demonstrations). One task: the same split as without."""
    order = np.random.default_rng(seed).permutation(num_episodes)
    if tasks is not None:
        tasks = np.asarray(tasks)[order]
        turn = np.zeros(num_episodes, np.int64)  # an episode's place among its task's episodes, in shuffled order
        for t in np.unique(tasks):
            turn[tasks == t] = np.arange(int((tasks == t).sum()))
        order = order[np.argsort(turn, kind="stable")]
    n_val = 0 if val_fraction <= 0 or num_episodes < 2 else max(1, int(round(val_fraction * num_episodes)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def check_train_config(cfg: TrainConfig) -> None:
    """Refuse option values the loop cannot run with, in one line (not a traceback deep in training)."""
    for name in ("steps", "batch_size", "log_every", "ckpt_every"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:  # None: the default, resolved by resolve_defaults
            raise MimeticError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    for name in ("warmup_steps", "eval_every", "eval_episodes", "obs_noise", "random_crop"):
        if getattr(cfg, name) < 0:
            raise MimeticError(f"--{name.replace('_', '-')} must not be negative, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise MimeticError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.task_sampling not in (*TASK_SAMPLING, None):  # None: the method's default, resolved by resolve_defaults
        raise MimeticError(f"--task-sampling must be {' or '.join(TASK_SAMPLING)}, got {cfg.task_sampling!r}")
    if cfg.lr_schedule not in ("cosine", "constant"):
        raise MimeticError(f"--lr-schedule must be cosine or constant, got {cfg.lr_schedule!r}")


def episode_frames(ds: Dataset, episodes: np.ndarray) -> np.ndarray:
    if len(episodes) == 0:
        return np.zeros(0, np.int64)
    return np.concatenate([np.arange(ds.episode_starts[e], ds.episode_ends[e]) for e in episodes])


def lr_factor(step: int, cfg: TrainConfig, restart: int = 0) -> float:
    """The learning rate's factor at `step`: linear warm-up over `warmup_steps`, then cosine to 0 at the last step
    (or constant). With `restart` > 0 (a policy's regression warm-up) the steps before it and the steps from it on
    are two schedules, each with its own warm-up and cosine."""
    start, end = (0, restart) if step < restart else (restart, cfg.steps)
    local = step - start
    warm = min(1.0, (local + 1) / max(1, cfg.warmup_steps))
    if cfg.lr_schedule == "constant":
        return warm
    progress = min(1.0, local / max(1, end - start))
    return warm * 0.5 * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------- training
def train_policy(
    policy: Policy,
    dataset: Dataset,
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    extra_info: dict | None = None,
    split: tuple | None = None,
    init_state: dict | None = None,
) -> Policy:
    """Train `policy` on `dataset` into `run_dir`; returns the policy to deploy (EMA weights if EMA).

    `split` = (train episodes, validation episodes) replaces the seeded shuffle of `split_episodes`
    (DAgger keeps its held-out episodes fixed while the dataset grows). `init_state` (a policy state
    dict) warm-starts a fresh run: its weights are loaded, then the normalization is fitted on this
    run's training frames as usual.
    """
    run = Path(run_dir)
    check_train_config(cfg)
    n_ranks, main = dist.world_size(), dist.is_main()
    dist.check_batch(cfg.batch_size)
    device = dist.rank_device(resolve_device(cfg.device))
    if device.type == "cpu":
        keep_cpu_allocations()  # image batches: no fresh pages for every large tensor of every step
    if dataset.num_episodes == 0:
        raise MimeticError(f"dataset {dataset.root} has no episodes to train on")
    dist.init(device)
    rd = RunDir(run, "training run", method=(extra_info or {}).get("method"))

    def open_run() -> dict | None:
        state = rd.start(resume)
        if state is not None and int(state.get("world_size", 1)) != n_ranks:
            raise MimeticError(f"{run}'s checkpoint was written by {state.get('world_size', 1)} training process(es); "
                               f"resume it with as many (this job has {n_ranks}) to continue exactly")
        return state

    state = dist.on_main(open_run)  # only rank 0 touches the run folder; every rank gets the state (or its error)
    # dropout, noise and crops draw from torch's generator: its own stream per rank (rank 0's is the one-process one)
    torch.manual_seed(cfg.seed if main else int(np.random.SeedSequence([cfg.seed, dist.rank()]).generate_state(1)[0]))
    c = policy.config
    if split is None:
        train_eps, val_eps = split_episodes(dataset.num_episodes, cfg.val_fraction, cfg.seed,
                                            tasks=dataset.task_index[dataset.episode_starts])
    else:
        train_eps, val_eps = (np.sort(np.asarray(e, np.int64)) for e in split)
    check_compatible(policy, dataset.features, dataset.act_dim, f"dataset {dataset.root}")
    index = window_index(dataset.episode_starts, dataset.episode_ends, c.n_obs_steps, c.horizon, c.action_start,
                         tuple(c.future_state))
    train_frames = episode_frames(dataset, train_eps)
    frames = {k: dataset.frames(k) for k in c.input_features}  # images stay uint8, shared, never copied to float
    conditioning = task_inputs(c, dataset, frames, train_eps)
    aux = aux_state_frames(c, dataset)  # the privileged-state loss's targets (None without one)
    # task_sampling=tasks: each task an equal share of every batch (a task with short episodes is not under-trained)
    weights = task_balanced_weights(dataset.task_index[train_frames]) if cfg.task_sampling == "tasks" else None
    train = WindowSampler(frames, dataset.actions, index, train_frames, aux_state=aux, weights=weights, **conditioning)
    # validation measures the method's own loss (eval mode: no auxiliary losses), so its windows carry no aux targets
    val = (WindowSampler(frames, dataset.actions, index, episode_frames(dataset, val_eps), **conditioning)
           if len(val_eps) else None)

    # demo-conditioned validation rollouts: each task shown by its first training episode
    val_demos = None
    if c.condition == "demo" and cfg.eval_every:
        from mimetic.evaluate import task_demos

        val_demos = task_demos(dataset, dataset.tasks)
    policy.to(device)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(policy).eval() if cfg.ema_decay > 0 else None
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    best_val_success = -1.0
    if state is not None:
        policy.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        gen.set_state(state["generator"])
        # dropout, diffusion noise and timesteps draw from torch's global generators: each rank restores its own
        set_rng_state(state["rank_rng"][dist.rank()] if n_ranks > 1 else state, device)
        step = int(state["step"])
        best_val_success = float(state.get("best_val_success", -1.0))
    else:
        policy.obs_encoder.load_pretrained()  # the config's pretrained_backbone file, if any
        if policy.task_cond is not None:
            policy.task_cond.set_instruction_embeddings()  # a pretrained text encoder embeds the instructions once
        if init_state is not None:
            policy.load_state_dict(init_state)
        policy.fit_normalization(train.obs.numpy()[train_frames], dataset.actions[train_frames],
                                 aux[train_frames] if aux is not None else None)
        if ema is not None:
            ema.load_state_dict(policy.state_dict())
    info = {"policy": policy.type_name, "dataset": str(Path(dataset.root).resolve()), "train": dataclasses.asdict(cfg),
            "train_episodes": train_eps.tolist(), "val_episodes": val_eps.tolist(), "parameters": policy.num_parameters()}
    info.update(extra_info or {})
    if main:
        rd.write_info(info)
    model = dist.wrap(policy, device)  # DDP under torchrun: backward averages the gradients over ranks

    def deployable() -> Policy:
        return ema if ema is not None else policy

    bar = progress_bar(progress and main, total=cfg.steps, initial=step, desc=f"train {policy.type_name}", unit="step")
    # time_s is the run's training time: a resumed run goes on from the time of its last row kept (its checkpoint's)
    done_s = next((r["time_s"] for r in reversed(rd.read_metrics()) if "time_s" in r), 0.0) if state and main else 0.0
    t0, losses = time.perf_counter() - done_s, []
    policy.train()
    try:
        while step < cfg.steps:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(step, cfg, policy.warmup_steps(cfg.steps))
            # every rank draws the same global batch from `gen` and keeps its share (all of it in one process)
            policy.start_step(step, cfg.steps)
            batch = to_device(train.sample(cfg.batch_size, gen, share=dist.shard), device)  # cameras stay uint8
            # crops happen in the policy's observation encoder (train_supervised maps --random-crop onto it)
            if n_ranks == 1:
                batch = augment_batch(batch, obs_noise=cfg.obs_noise, crop=0, normalizer=policy.obs_norm, generator=gen)
            elif cfg.obs_noise > 0:  # the global batch's noise (as one process draws it), this rank's share of it
                tiled = batch["obs"].repeat(n_ranks, *[1] * (batch["obs"].ndim - 1))  # the share sits at its place
                batch = {**batch, "obs": dist.shard(add_obs_noise(tiled, cfg.obs_noise, policy.obs_norm, gen))}
            with autocast(device):
                loss, _ = model(batch)  # forward = loss: what distributed wrappers hook
            value = loss.item()
            if not math.isfinite(value):
                raise MimeticError(f"training diverged at step {step}: loss is {float(loss)} (lower --lr?)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for pe, p in zip(ema.parameters(), policy.parameters()):
                        pe.lerp_(p, 1 - cfg.ema_decay)
            step += 1
            losses.append(value)
            bar.update(1)
            log = step % cfg.log_every == 0 or step == cfg.steps
            if log:
                train_loss, losses = dist.mean(float(np.mean(losses))), []  # the mean over every rank's share
            if log and main:  # rank 0 alone writes the run folder and validates
                row = {"step": step, "train_loss": train_loss, "lr": opt.param_groups[0]["lr"],
                       "time_s": round(time.perf_counter() - t0, 3)}
                if val is not None:
                    row["val_loss"] = validation_loss(deployable(), val, cfg.batch_size)
                    policy.train()
                if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps) and c.env:
                    row["val_success"] = rollout_success(deployable(), cfg.eval_episodes, val_demos)
                    policy.train()
                    if row["val_success"] > best_val_success:
                        best_val_success = row["val_success"]
                        save_policy(deployable(), run / "best")
                rd.append_metrics(row)
                bar.set_postfix({k: round(v, 4) for k, v in row.items() if k in ("train_loss", "val_loss", "val_success")})
            checkpoint = step % cfg.ckpt_every == 0 or step == cfg.steps
            rank_rng = dist.gather(rng_state(device)) if checkpoint else None  # every rank's generators: exact resume
            if checkpoint and main:
                save_policy(deployable(), run)
                state = {"model": policy.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                         **rng_state(device), "step": step, "best_val_success": best_val_success}
                if ema is not None:
                    state["ema"] = ema.state_dict()
                if n_ranks > 1:
                    state.update(world_size=n_ranks, rank_rng=rank_rng)
                rd.save_checkpoint(state)
    except RuntimeError as e:  # a collective in DDP's backward, the logged loss or a checkpoint: another rank died
        if not dist.is_lost(e):
            raise
        raise dist.lost(e) from None
    finally:
        bar.close()
    dist.barrier()  # the other ranks return once rank 0 has written the run
    out = deployable().eval()
    return out


def task_inputs(config, dataset: Dataset, frames: dict, train_eps: np.ndarray) -> dict:
    """What a task-conditioned policy's windows carry (WindowSampler keywords): each frame's task index, or the
    demonstrations (drawn from the training episodes) and each frame's episode."""
    if config.condition in ("task", "task-id"):
        if list(config.instructions) != list(dataset.tasks):
            raise MimeticError(f"dataset {dataset.root} has the tasks {dataset.tasks}, but the policy was made for "
                               f"{config.instructions}")
        return {"task": dataset.task_index}
    if config.condition == "demo":
        keys = vector_input_keys(config)
        vectors = vector_input({k: frames[k] for k in keys}) if keys else np.zeros((dataset.num_frames, 0), np.float32)
        starts, ends = dataset.episode_starts, dataset.episode_ends
        bank = DemoBank(torch.as_tensor(vectors, dtype=torch.float32), torch.as_tensor(dataset.actions, dtype=torch.float32),
                        starts, ends, dataset.task_index[starts], train_eps, config.demo_frames)
        return {"demos": bank, "episode": dataset.episode_index}
    return {}


@torch.no_grad()
def validation_loss(policy: Policy, val: WindowSampler, batch_size: int, max_batches: int = 20) -> float:
    policy.eval()
    total, n = 0.0, 0
    device = policy.device
    for i, batch in enumerate(val.iterate(batch_size)):
        if i >= max_batches:
            break
        with autocast(device):
            loss, _ = policy(to_device(batch, device))
        total += float(loss) * len(batch["obs"])
        n += len(batch["obs"])
    return total / max(1, n)


def rollout_success(policy: Policy, episodes: int, demos: dict | None = None) -> float:
    """Success on validation seeds in the policy's environment; on a suite, the mean over its tasks, each task told
    by its instruction (or, `demos`: instruction -> Episode, a demonstration of it)."""
    from mimetic.envs.suites import instruction_for, is_suite
    from mimetic.evaluate import VAL_SEED, evaluate, evaluate_suite

    c = policy.config
    demos = demos or {}

    def actor(instruction: str) -> PolicyActor:  # a policy without conditioning ignores the task
        return PolicyActor(policy, task=instruction, demo=demos.get(instruction))

    if is_suite(c.env):
        res = evaluate_suite(lambda t: actor(t.instruction), c.env, episodes, seed=VAL_SEED, env_options=c.env_options)
    else:
        res = evaluate(actor(instruction_for(c.env, c.env_options)), c.env, episodes, seed=VAL_SEED,
                       env_options=c.env_options)
    return res.success_rate


# Policy config fields a method does not expose: they come from the dataset and the environment.
_DERIVED = ("obs_dim", "act_dim", "env", "env_options", "input_features", "instructions", "text_identity", "aux_state_dim")


# Defaults of a policy that reads at least one camera, for every supervised method: ~0.3-0.5 s per step on one
# CPU core at 84x84, so 2000 steps stay within ~30 minutes of one core (batch 256 costs ~1 s per step). A method
# may change a field for camera policies (BC's history and chunks; diffusion and flow: 4000 steps with a warm-up).
IMAGE_DEFAULTS = {"batch_size": 64, "steps": 2000}


def method_config(policy_config_class, name: str = "Config", images: dict = IMAGE_DEFAULTS,
                  multi_task: dict | None = None, **defaults) -> type:
    """A method's Config dataclass: every TrainConfig field plus the policy's own fields.

    The policy's defaults are used as they are (one place to change them), except where `defaults`
    overrides a field of either. The CLI turns each field into an option of `mimetic train METHOD`.
    A field named in `images` defaults to None, "not given": `resolve_defaults` fills it with the state
    default (`Config.STATE_DEFAULTS`) or, when the policy reads a camera, the image one (`Config.IMAGE_DEFAULTS`).
    `multi_task` (fields named in `images`) overrides the state defaults for a task-conditioned state policy trained
    on data of several tasks (`Config.MULTI_TASK_DEFAULTS`); its `steps` is a number per task (see
    `resolve_defaults`).
    """
    multi_task = dict(multi_task or {})
    if set(multi_task) - set(images):
        raise TypeError(f"method_config: multi_task fields {sorted(set(multi_task) - set(images))} not in images")
    hints = {**typing.get_type_hints(TrainConfig), **typing.get_type_hints(policy_config_class)}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    field_defaults = {f.name: f.default for f in dataclasses.fields(policy_config_class)}
    field_defaults.update({f.name: f.default for f in dataclasses.fields(TrainConfig)})
    state = {k: defaults.pop(k, field_defaults[k]) for k in images}

    def spec(value):
        return dataclasses.field(default_factory=lambda: list(value)) if isinstance(value, list) else dataclasses.field(default=value)

    specs = [(k, hints[k] | None, dataclasses.field(default=None)) for k in images]
    specs += [(k, hints[k], spec(defaults.pop(k))) for k in list(defaults) if k in train_names]
    for f in dataclasses.fields(policy_config_class):
        if f.name in _DERIVED or f.name in train_names or f.name in images:
            continue
        if f.name in defaults:
            field = spec(defaults.pop(f.name))
        elif f.default_factory is not dataclasses.MISSING:
            field = dataclasses.field(default_factory=f.default_factory)
        else:
            field = dataclasses.field(default=f.default)
        specs.append((f.name, hints[f.name], field))
    if defaults:
        raise TypeError(f"method_config: unknown fields {sorted(defaults)} for {policy_config_class.__name__}")
    config = dataclasses.make_dataclass(name, specs, bases=(TrainConfig,))
    config.ABSENT = dict(policy_config_class.ABSENT)  # see PolicyConfig.ABSENT: for runs saved before a field existed
    config.STATE_DEFAULTS, config.IMAGE_DEFAULTS, config.MULTI_TASK_DEFAULTS = state, dict(images), multi_task
    return config


def resolve_defaults(cfg, reads_cameras: bool, n_tasks: int = 1):
    """A copy of the method config `cfg` with its unset (None) fields given their defaults: the image ones when the
    policy reads at least one camera, else the state ones. On data of `n_tasks` > 1 tasks the default `steps` is
    n_tasks times the one-task default: one policy for many tasks gets the budget of as many specialists (the
    multi-task protocol's). A task-conditioned state policy on such data takes the method's `MULTI_TASK_DEFAULTS`
    over that (a blind one, `condition` none, does not: measured to lose there); their `steps` are per task, and
    never give fewer steps than one task's default (BC: max(3000, 1000 x n_tasks)).
    `cfg` itself is not touched; a config without such defaults (not made by `method_config`) comes back as it
    is."""
    table = dict(getattr(type(cfg), "IMAGE_DEFAULTS" if reads_cameras else "STATE_DEFAULTS", {}))
    one_task_steps = table.get("steps")
    if "steps" in table:
        table["steps"] *= max(1, n_tasks)
    if n_tasks > 1 and not reads_cameras and getattr(cfg, "condition", "none") != "none":
        multi = dict(getattr(type(cfg), "MULTI_TASK_DEFAULTS", {}))
        if "steps" in multi:
            multi["steps"] = max(one_task_steps, multi["steps"] * n_tasks)
        table.update(multi)
    return dataclasses.replace(cfg, **{k: v for k, v in table.items() if getattr(cfg, k) is None})


def dataset_task_count(dataset: Dataset) -> int:
    """How many tasks `dataset`'s episodes do (distinct task indices, as the holdout and `--task-sampling` count
    them; a task table entry no episode uses does not count); at least 1."""
    return max(1, len(np.unique(dataset.task_index[dataset.episode_starts])))


def resolve_for_dataset(cfg, dataset: Dataset):
    """`resolve_defaults` for a policy trained on `dataset` (with cfg's `obs_keys`, if any)."""
    if not hasattr(type(cfg), "IMAGE_DEFAULTS"):
        return cfg
    inputs = select_input_features(dataset, getattr(cfg, "obs_keys", ""), getattr(cfg, "aux_state", ""))
    return resolve_defaults(cfg, any(f.is_image for f in inputs.values()), dataset_task_count(dataset))


def policy_config(policy_config_class, cfg, obs_dim: int, act_dim: int, env: str | None = None,
                  env_options: dict | None = None, input_features: dict[str, Feature] | None = None,
                  instructions: list[str] | None = None):
    """Build a policy config from the matching fields of a method config plus the observation / action sizes
    (`input_features`: the observation features it reads, default the state alone) and, for a task-conditioned
    policy, the data's task instructions (and the identity of a pretrained text encoder named by `text_encoder`)."""
    names = {f.name for f in dataclasses.fields(policy_config_class)}
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k in names and k not in _DERIVED}
    inputs = {k: feature_entry(f) for k, f in (input_features or {}).items()}
    task = {}
    if fields.get("condition", "none") != "none":
        task["instructions"] = list(instructions or [])
        if fields["condition"] == "task" and fields.get("text_encoder", "learned") != "learned":
            from mimetic.policies.text import load_text_encoder

            task["text_identity"] = load_text_encoder(fields["text_encoder"]).identity()
    return policy_config_class(**fields, obs_dim=obs_dim, act_dim=act_dim, env=env, env_options=dict(env_options or {}),
                               input_features=inputs, **task)


def select_input_features(dataset: Dataset, obs_keys: str = "", aux_state: str = "") -> dict[str, Feature]:
    """The observation features a policy trained on `dataset` reads, in the dataset's order.

    `obs_keys` (comma-separated) chooses among the dataset's observation features; default all of them
    (state and cameras: cameras go through the policy's observation encoder) except the `aux_state` targets.
    """
    feats, available = dataset.features, list(dataset.observation_keys)
    targets = aux_state_features(dataset, aux_state)
    chosen = [k for k in available if k not in targets]
    if obs_keys.strip():
        wanted = comma_keys(obs_keys)
        unknown = [k for k in wanted if k not in available]
        if unknown:
            raise MimeticError(f"--obs-keys: dataset {dataset.root} has no observation feature {unknown[0]!r}; "
                               f"it has {', '.join(available)}")
        both = [k for k in wanted if k in targets]
        if both:
            raise MimeticError(f"--obs-keys names {both[0]!r}, which --aux-state makes a training target: a policy "
                               f"cannot read what it learns to predict")
        chosen = [k for k in available if k in wanted]
    if not chosen:
        raise MimeticError(f"dataset {dataset.root} has no observation features to train on")
    return {k: feats[k] for k in chosen}


def aux_state_features(dataset: Dataset, aux_state: str) -> dict[str, Feature]:
    """The vector features `aux_state` (comma-separated keys) names, checked against `dataset`, in the order named."""
    keys = comma_keys(aux_state)
    feats = dataset.features
    for k in keys:
        if k not in feats or k not in dataset.observation_keys:
            raise MimeticError(f"--aux-state: dataset {dataset.root} has no observation feature {k!r}; it has "
                               f"{', '.join(dataset.observation_keys)} (record one with e.g. --env-option state=proprio+env)")
        if feats[k].is_image:
            raise MimeticError(f"--aux-state: {k!r} is a camera; the auxiliary loss predicts vector features")
    if len(set(keys)) != len(keys):
        raise MimeticError(f"--aux-state names a feature twice: {aux_state!r}")
    return {k: feats[k] for k in keys}


def aux_state_frames(config, dataset: Dataset) -> np.ndarray | None:
    """(N, aux_state_dim) float32: the dataset's `aux_state` features, concatenated; None when the policy has none."""
    keys = aux_state_keys(config)
    if not keys:
        return None
    aux_state_features(dataset, config.aux_state)
    frames = vector_input({k: dataset.frames(k) for k in keys})
    if frames.shape[1] != config.aux_state_dim:
        raise MimeticError(f"dataset {dataset.root}: the aux_state features {keys} have {frames.shape[1]} dimensions, "
                           f"the policy predicts {config.aux_state_dim}")
    return frames


def crop_ratio_for(size: int, inputs: dict[str, Feature]) -> float:
    """`--random-crop SIZE` as a crop ratio: SIZE pixels of the shortest camera side (the same fraction of every side)."""
    sides = [min(f.shape[:2]) for f in inputs.values() if f.is_image]
    if not sides:
        raise MimeticError(f"--random-crop {size} needs camera features, but the policy reads only "
                           f"{', '.join(inputs)} (vector features are never cropped)")
    if size > min(sides):
        raise MimeticError(f"--random-crop {size} does not fit camera frames of side {min(sides)}")
    return size / min(sides)


def train_supervised(policy_class: type[Policy], method: str, cfg, dataset: Dataset, run_dir: str | Path, *,
                     env: str | None = None, env_options: dict | None = None, resume: bool = False,
                     progress: bool = True, split: tuple | None = None, init_state: dict | None = None) -> Policy:
    """Build a policy of `policy_class` from `cfg` (a TrainConfig subclass with the policy's fields) and train it
    (`split`, `init_state`: see `train_policy`)."""
    env = env if env is not None else dataset.env_name
    env_options = env_options if env_options is not None else dataset.env_options
    inputs = select_input_features(dataset, getattr(cfg, "obs_keys", ""), getattr(cfg, "aux_state", ""))
    # batch_size, steps: smaller with cameras; steps x the number of tasks
    cfg = resolve_defaults(cfg, any(f.is_image for f in inputs.values()), dataset_task_count(dataset))
    obs_dim = sum(int(np.prod(f.shape)) for f in inputs.values() if not f.is_image)
    pcfg = policy_config(policy_class.config_class, cfg, obs_dim, dataset.act_dim, env, env_options, inputs,
                         instructions=dataset.tasks)
    targets = aux_state_features(dataset, getattr(cfg, "aux_state", ""))
    if targets:  # the privileged-state loss's width, from the dataset
        pcfg = dataclasses.replace(pcfg, aux_state_dim=sum(int(np.prod(f.shape)) for f in targets.values()))
    if getattr(cfg, "random_crop", 0) > 0:  # --random-crop SIZE: the encoder's crop (a new config; cfg is not touched)
        pcfg = dataclasses.replace(pcfg, crop_ratio=crop_ratio_for(cfg.random_crop, inputs))
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed only
    policy = policy_class(pcfg)
    train_cfg = TrainConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainConfig)})
    return train_policy(policy, dataset, train_cfg, run_dir, resume=resume, progress=progress, split=split,
                        init_state=init_state, extra_info={"method": method, "config": dataclasses.asdict(cfg), "env": env,
                                                          "env_options": env_options})
