"""`mimetic <verb>`: the command line. It parses arguments and calls library functions; no
algorithm logic lives here. A user error (MimeticError) prints one line and exits with status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from mimetic.errors import MimeticError


# ------------------------------------------------------------------------------ helpers
def _parse_options(pairs: list[str] | None, where: str) -> dict:
    """--env-option key=value (value parsed as JSON when it can be) -> dict."""
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise MimeticError(f"{where}: expected key=value, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


# what a few options mean, where the name alone does not say it
FIELD_HELP = {
    "condition": "what tells a multi-task policy its task: none | task (the instruction, through --text-encoder) | "
                 "task-id (one learned vector per task: the baseline) | demo (a demonstration of the task; "
                 "evaluate with mimetic eval --demo DATASET) ",
    "text_encoder": "--condition task: learned (from the data's own instructions; a sentence never seen in training "
                    "is an error), the PATH of a local transformers model folder, or wordllama (the sentence encoder the wordllama "
                    "package ships; pip install wordllama); a pretrained encoder is frozen and embeds new wording too ",
    "task_dim": "width of the task vector ",
    "demo_frames": "--condition demo: frames read from the demonstration, spread evenly over it ",
    "future_state": "auxiliary loss while training: predict the state these many steps ahead (e.g. 10 25 50) from the "
                    "current observation; with cameras it teaches the encoder where the hand will go (bc, diffusion, flow) ",
    "future_weight": "weight of the --future-state loss ",
    "aux_state": "auxiliary loss while training: vector features of the dataset (comma-separated, e.g. "
                 "observation.environment_state, recorded by --env-option state=proprio+env) that the policy does not "
                 "read but learns to predict from its current observation; evaluation needs none of them (bc, diffusion, flow) ",
    "aux_state_weight": "weight of the --aux-state loss ",
    "val_fraction": "fraction of the episodes held out for the validation loss (on a multi-task dataset taken from "
                    "every task in turn, so each loses as many, give or take one) ",
    "task_sampling": "how training batches are drawn: frames (every frame alike) or tasks (every task of a multi-task "
                     "dataset alike, so a task with short or few episodes gets its share; a one-task dataset is "
                     "unaffected) ",
    "obs_scale": "the normalized vector observations (and --relative-to offsets) are multiplied by this, so their "
                 "std becomes obs_scale; below 1 the network starts nearer its linear regime in them ",
    "relative_to": "egocentric features: the name of a point in the state (its dimensions named P_x, P_y, P_z, e.g. "
                   "hand for Meta-World); every other named point's offset from it (object - hand, goal - hand) is "
                   "added to the policy's input (bc, act, diffusion, flow). auto (BC's default): hand where the state "
                   "names a hand and another point (Meta-World's full state), else none (off) ",
}


def add_dataclass_options(parser: argparse.ArgumentParser, cls) -> None:
    """One --option per dataclass field (underscores become dashes); defaults are the field defaults."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("obs_dim", "act_dim", "env", "env_options"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        t = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        origin = typing.get_origin(t)
        if t is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default)
        elif origin is list:
            (inner,) = typing.get_args(t)
            parser.add_argument(flag, dest=f.name, type=inner, nargs="+", default=default,
                                help=f"{FIELD_HELP.get(f.name, '')}(default: {default})")
        else:
            base = next((a for a in typing.get_args(t) if a is not type(None)), t) if origin else t
            shown = default
            if f.name in getattr(cls, "IMAGE_DEFAULTS", {}):  # None: resolved by the trainer, see method_config
                state, images = cls.STATE_DEFAULTS[f.name], cls.IMAGE_DEFAULTS[f.name]
                shown = state if state == images else f"{state}; {images} when the policy reads cameras"
                multi = cls.MULTI_TASK_DEFAULTS.get(f.name)
                if f.name == "steps":
                    shown = f"{shown}; times the number of tasks of a multi-task dataset"
                    if multi is not None:
                        shown += (f", except a task-conditioned policy from states: max({state}, {multi} x the "
                                  "number of tasks)")
                elif multi is not None:
                    shown += f"; {multi} for a task-conditioned policy from states on a multi-task dataset"
            parser.add_argument(flag, dest=f.name, type=base, default=default,
                                help=f"{FIELD_HELP.get(f.name, '')}(default: {shown})")


def _dataclass_from_args(cls, args):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="where networks run: auto (cuda, else mps, else cpu) | cpu | "
                        "cuda | cuda:N | mps (default auto; bf16 autocast on CUDA)")


def _check_device(name: str) -> None:
    """An unavailable --device is one line (exit 2) before any work."""
    from mimetic.devices import resolve_device

    resolve_device(name)


def _add_ray(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--ray", action="store_true",
                        help=f"run {what} as Ray tasks: join the cluster in RAY_ADDRESS, else start a local Ray "
                             "(pip install mimetic[ray]); each task steps its environments in its own process "
                             "(--workers does not apply); the results do not depend on it")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="run them on the Ray cluster at ADDR (host:port, ray://host:port or auto); implies --ray")


def _ray_backend(args):
    """A RayBackend for --ray / --ray-address (checked now: Ray missing or an address that does not answer is one
    line before any work), or None. Use as a context manager: a Ray this command started is shut down after it."""
    import contextlib

    if not (getattr(args, "ray", False) or getattr(args, "ray_address", None)):
        return contextlib.nullcontext(None)
    from mimetic.shards import RayBackend

    return RayBackend(address=args.ray_address)


def _write_json(path: str | None, obj) -> None:
    if path:
        from mimetic.data.io import atomic_write_json

        atomic_write_json(Path(path), obj)


# ------------------------------------------------------------------------------ verbs
def cmd_envs(args) -> None:
    from mimetic.envs import list_envs

    from mimetic.envs.suites import describe_suites

    for name in list_envs():
        print(name)
    for line in describe_suites():
        print(line)


def cmd_collect(args) -> None:
    from mimetic.collect import collect

    with _ray_backend(args) as backend:
        ds = collect(args.env, args.out, args.episodes, seed=args.seed, only_success=args.only_success,
                     env_options=_parse_options(args.env_option, "--env-option"), num_envs=args.num_envs,
                     progress=not args.quiet, workers=args.workers, image_storage=args.image_storage,
                     video_codec=args.video_codec, backend=backend, expert_noise=args.expert_noise)
    succ = ds.episode_success().mean()
    print(f"{ds.root}: {ds.num_episodes} episodes, {ds.num_frames} frames, expert success {succ:.2f}")


def _refuse_changes_on_resume(verb: str, run, args, cfg, flags: dict[str, str], extra: list[str], note: str = "") -> None:
    """--resume continues a run with its saved configuration: a field given on the command line (`flags`:
    field -> option, its --no- form counts too) with another value is refused in one line, not ignored."""
    changed = [f"{flag} {getattr(args, k)} (the run has {getattr(cfg, k)})" for k, flag in flags.items()
               if {flag, flag.replace("--", "--no-", 1)} & args.given_flags and getattr(args, k) != getattr(cfg, k)]
    changed += extra
    if changed:
        raise MimeticError(f"{verb} --resume continues {run} with the configuration it was started with; "
                           f"{', '.join(changed)} cannot change{note}: choose another --out")


def cmd_train(args) -> None:
    from mimetic.algos import SUPERVISED, method_module
    from mimetic.data.dataset import Dataset

    module = method_module(args.method)
    run = Path(args.out)
    env_options = _parse_options(args.env_option, "--env-option") if args.env_option else None
    if args.resume:
        from mimetic.data.io import read_json

        saved = read_json(run / "train.json", "training run")
        if saved.get("method") not in (None, args.method):  # another method's weights and optimizer: refuse in one line
            raise MimeticError(f"{run} holds a {saved['method']} run, not {args.method}: resume it with "
                               f"`mimetic train {saved['method']} --out {run} --resume`")
        names = {f.name for f in dataclasses.fields(module.Config)}
        saved_cfg = {**getattr(module.Config, "ABSENT", {}), **saved.get("config", {})}  # saved before a field existed
        cfg = module.Config(**{k: v for k, v in saved_cfg.items() if k in names})
        flags = {n: "--" + n.replace("_", "-") for n in sorted(names - {"steps", "device"}) if hasattr(args, n)}
        _refuse_changes_on_resume("train", run, args, cfg, flags, extra=[], note=" (only --steps and --device can)")
        if args.steps_given:
            cfg.steps = args.steps
        if "--device" in args.given_flags and "device" in names:  # where it runs, not what it learns
            cfg.device = args.device
        data = args.data or saved.get("dataset")
        if args.data and saved.get("dataset") and Path(args.data).resolve() != Path(saved["dataset"]).resolve():
            raise MimeticError(f"train --resume continues {run} on the dataset it was trained on, {saved['dataset']}, "
                               f"not --data {Path(args.data).resolve()}: leave --data out, or choose another --out")
        env = args.env or saved.get("env")
        env_options = env_options if env_options is not None else saved.get("env_options")
    else:
        if not args.data:
            raise MimeticError("train: --data DIR is required")
        cfg = _dataclass_from_args(module.Config, args)
        data, env = args.data, args.env
    if args.nproc != 1:  # this command as N training processes on this machine (the N workers run it without --nproc)
        args.exit_status = _launch_ranks(args, cfg)
        return
    from mimetic import distributed

    if args.method not in SUPERVISED:
        distributed.require_single_process(f"train {args.method}")
    dataset = Dataset.load(data, frame_cache_mb=args.frame_cache_mb)  # cameras decoded on demand past the setting
    if env is not None:
        _check_env_matches(env, env_options if env_options is not None else dataset.env_options, dataset)
    module.train(cfg, dataset, run, env=env, env_options=env_options, resume=args.resume, progress=not args.quiet)
    if distributed.is_main():
        print(f"trained {args.method} -> {run}")


def _launch_ranks(args, cfg) -> int:
    """`train --nproc N`: run this command as N ranks of torch's elastic launcher (torchrun's machinery) on this
    machine; what cannot work is one line before any process starts."""
    from mimetic import distributed
    from mimetic.algos import SUPERVISED
    from mimetic.devices import resolve_device

    if args.nproc < 1:
        raise MimeticError(f"--nproc must be at least 1, got {args.nproc}")
    if distributed.world_size() > 1:
        raise MimeticError("--nproc: this process is already one of torchrun's ranks; leave --nproc out under torchrun")
    if args.method not in SUPERVISED:
        raise MimeticError(f"--nproc: train {args.method} runs in one process; --nproc trains {', '.join(SUPERVISED)}")
    slots, what = distributed.machine_slots(resolve_device(cfg.device))
    if args.nproc > slots:
        raise MimeticError(f"--nproc {args.nproc}: this machine has {slots} {what} for --device {cfg.device}; "
                           f"use at most --nproc {slots} (torchrun for several machines)")
    if cfg.batch_size is not None:  # a default batch is checked by the ranks, once resolved for the dataset
        distributed.check_batch(cfg.batch_size, n=args.nproc)
    argv, i = [], 0
    while i < len(args.argv):  # the same command without --nproc
        a = args.argv[i]
        i += 2 if a == "--nproc" else 1
        if a != "--nproc" and not a.startswith("--nproc="):
            argv.append(a)
    return distributed.launch(argv, args.nproc)


def _check_env_matches(env: str, env_options: dict, dataset) -> None:
    from mimetic.envs.spaces import env_sizes

    env_sizes(env, env_options).check_features(dataset.features, f"dataset {dataset.root}", env)


def _is_irl_run(run) -> bool:
    from mimetic.algos.irl import is_irl_run

    return is_irl_run(run)


def make_actor(run: str | None, expert: bool, env: str, env_options: dict, ensemble: float | None = None,
               sampling_steps: int | None = None, device: str | None = None, demo=None, instruction: str | None = None):
    """The actor to evaluate: the env's expert, or the policy checkpoint in `run` (diffusion / flow
    sampling with `sampling_steps` steps instead of the checkpoint's own number, if given), on `device`.
    A task-conditioned policy is told `instruction` (default the task's own, `instruction_for(env, env_options)`)
    and `demo`."""
    from mimetic.envs import make_expert
    from mimetic.policies.base import load_policy

    if expert:
        return make_expert(env, **env_options)
    if _is_irl_run(run):  # the soft-optimal policy under the learned reward, planned in env
        from mimetic.algos.irl import policy_actor

        if ensemble is not None or sampling_steps is not None:
            raise MimeticError(f"eval: {run} is a maxent-irl run (a tabular policy); --temporal-ensemble and --sampling-steps do not apply")
        return policy_actor(run, env, env_options)
    from mimetic.envs.suites import instruction_for

    policy = _load_eval_policy(run, env, env_options, sampling_steps, device)
    if instruction is not None and getattr(policy.config, "condition", "none") not in ("task", "task-id"):
        raise MimeticError(f"--instruction: this {policy.type_name} policy is not conditioned on an instruction "
                           "(train it with --condition task)")
    return _policy_actor(policy, ensemble, instruction or instruction_for(env, env_options), demo)


def _load_eval_policy(run: str, env: str, env_options: dict, sampling_steps: int | None, device: str | None):
    """The policy in `run`, checked against `env`'s features, sampling in `sampling_steps` steps if given."""
    from mimetic.envs.spaces import env_sizes
    from mimetic.policies.base import load_policy

    policy = load_policy(run, device=device)
    inputs = getattr(policy.config, "input_features", None) or {"observation.state": (policy.config.obs_dim,)}
    env_sizes(env, env_options).check_features({**inputs, "action": (policy.config.act_dim,)}, f"policy {run}", env)
    if sampling_steps is not None:
        if not hasattr(policy, "set_sampling_steps"):
            raise MimeticError(f"--sampling-steps: {run} holds a {policy.type_name} policy; only diffusion and flow sample in steps")
        policy.set_sampling_steps(sampling_steps)
    return policy


def _policy_actor(policy, ensemble: float | None, task: str | None, demo):
    """A PolicyActor; a task-conditioned policy is told the task (its instruction) and the demonstration `demo`."""
    from mimetic.policies.base import PolicyActor

    condition = getattr(policy.config, "condition", "none")
    if demo is not None and condition != "demo":
        raise MimeticError(f"--demo: this {policy.type_name} policy is conditioned on {condition!r}, not on a "
                           "demonstration (train it with --condition demo)")
    return PolicyActor(policy, temporal_ensemble=ensemble, task=task, demo=demo)


def cmd_eval(args) -> None:
    from mimetic.evaluate import describe_return, evaluate

    if not args.expert and not args.run:
        raise MimeticError("eval: give a RUN directory, or --expert")
    _check_device(args.device)
    env, env_options = args.env, _parse_options(args.env_option, "--env-option")
    if args.run and not args.expert and _is_irl_run(args.run):  # its world by default, another one if its features match
        from mimetic.algos.irl import load_reward

        env, env_options = load_reward(args.run).resolve(env, env_options or None)
    if env is None and args.run:
        from mimetic.policies.base import load_policy

        c = load_policy(args.run).config
        env, env_options = c.env, env_options or dict(c.env_options)
    if env is None:
        raise MimeticError("eval: --env ENV is required (the checkpoint does not name its environment)")
    from mimetic.envs.suites import instruction_for, is_suite

    if is_suite(env):
        _eval_suite(args, env, env_options)
        return
    if args.tasks:
        raise MimeticError(f"--tasks selects tasks of a suite; {env} is one task")
    demo = None
    if args.demo:
        _check_demo_flag(args)
        from mimetic.evaluate import task_demos

        text = instruction_for(env, env_options)
        demo = task_demos(args.demo, [text], args.seed)[text]
    if args.instruction is not None and (args.expert or not args.instruction.strip()):
        raise MimeticError("--instruction tells a RUN's instruction-conditioned policy its task: " + (
            "the expert takes none" if args.expert else "give a non-empty TEXT"))
    actor = make_actor(args.run, args.expert, env, env_options, args.temporal_ensemble, args.sampling_steps, args.device,
                       demo=demo, instruction=args.instruction)
    if args.video is not None:  # before the evaluation: a task that cannot render fails at once
        from mimetic.videos import render_options

        render_options(env, env_options)
        if args.video_episodes < 1:
            raise MimeticError(f"--video-episodes must be at least 1, got {args.video_episodes}")
    with _ray_backend(args) as backend:
        res = evaluate(actor, env, args.episodes, args.seed, env_options=env_options, num_envs=args.num_envs,
                       progress=not args.quiet, workers=args.workers, backend=backend)
    who = "expert" if args.expert else args.run
    lo, hi = res.ci95
    print(f"{who} on {env}: success {res.success_rate:.3f} [95% CI {lo:.3f}, {hi:.3f}], length {res.mean_length:.1f}, "
          f"{res.episodes} episodes (seed {res.seed}); "
          + describe_return(res.mean_return, res.return_comparable, res.return_note))
    out = res.to_json()
    out["policy"] = who
    _write_json(args.json, out)
    if args.video is not None:
        from mimetic.videos import format_videos, record_videos

        seeds = range(res.seed, res.seed + min(args.video_episodes, res.episodes))
        manifest = record_videos(actor, env, seeds, args.video, env_options=env_options, num_envs=args.num_envs,
                                 codec=args.video_codec, evaluation=res, progress=not args.quiet)
        print(format_videos(manifest, args.video))


def _check_demo_flag(args) -> None:
    if args.expert or not args.run:
        raise MimeticError("--demo gives a demonstration to a policy conditioned on one; the expert needs none")


def _eval_suite(args, suite: str, env_options: dict) -> None:
    """`mimetic eval RUN --env SUITE`: every task of the suite (or those --tasks names) on the same seeds."""
    from mimetic.envs import make_expert
    from mimetic.envs.suites import check_task_options, select_tasks, suite_tasks
    from mimetic.evaluate import evaluate_suite, format_suite_table, task_demos

    tasks = select_tasks(suite_tasks(suite), args.tasks, suite)
    if args.instruction is not None:
        raise MimeticError(f"--instruction words one task; {suite} is a suite: give --env one of its tasks")
    if args.video is not None:
        raise MimeticError(f"--video records one task; {suite} is a suite: give --env one of its tasks")
    check_task_options(tasks, env_options, f"eval {suite}")
    if args.expert:
        def actor_for(t):
            return make_expert(t.env, **{**env_options, **t.options})
    else:
        if _is_irl_run(args.run):
            raise MimeticError(f"eval: {args.run} is a maxent-irl run (one tabular task); {suite} is a suite")
        first = tasks[0]
        policy = _load_eval_policy(args.run, first.env, {**env_options, **first.options}, args.sampling_steps, args.device)
        demos = {}
        if args.demo:
            _check_demo_flag(args)
            demos = task_demos(args.demo, [t.instruction for t in tasks], args.seed)

        def actor_for(t):
            return _policy_actor(policy, args.temporal_ensemble, t.instruction, demos.get(t.instruction))
    with _ray_backend(args) as backend:
        res = evaluate_suite(actor_for, suite, args.episodes, args.seed, env_options=env_options, num_envs=args.num_envs,
                             progress=not args.quiet, workers=args.workers, backend=backend, tasks=tasks)
    who = "expert" if args.expert else args.run
    out = res.to_json()
    out["policy"] = who
    print(f"{who} on {suite}: {len(tasks)} tasks, {res.episodes} episodes each (seed {res.seed})")
    print(format_suite_table(out), end="")
    _write_json(args.json, out)


def cmd_convert(args) -> None:
    from mimetic.data.formats import convert, export_lerobot

    storage = {"image_storage": args.image_storage, "video_codec": args.video_codec}
    if args.to == "lerobot":
        ds = export_lerobot(args.src, args.dst, **storage)
    else:
        ds = convert(args.src, args.dst, fmt=args.format, obs_keys=args.obs_keys, action_key=args.action_key,
                     filter_key=args.filter_key, skip_images=args.skip_images, fps=args.fps, env=args.env, **storage)
    feats = ds.features
    obs = ", ".join(f"{k} {'x'.join(map(str, feats[k].shape))}" for k in ds.observation_keys)
    print(f"{args.src} -> {ds.root}: {ds.num_episodes} episodes, {ds.num_frames} frames, "
          f"observations {obs}, actions {ds.act_dim}-d" + (f", cameras as {ds.image_storage}" if ds.image_keys else ""))


def cmd_dagger(args) -> None:
    import contextlib

    from mimetic import distributed
    from mimetic.algos.dagger import DaggerConfig, check_processes, learner_config, load_config, run_dagger

    if args.resume:
        cfg = load_config(args.out)  # run_dagger reads it again; here it says which expert to build
        if "--device" in args.given_flags:  # where it runs, not what it learns: may change on resume
            cfg = dataclasses.replace(cfg, device=args.device)
        flags = {k: "--data" if k == "initial_data" else "--" + k.replace("_", "-") for k in _DAGGER_ARGS}
        extra = ["--from-scratch (the run warm-starts)"] if args.from_scratch and cfg.warm_start else []
        _refuse_changes_on_resume("dagger", args.out, args, cfg, flags, extra=extra)
    else:
        if not args.env:
            raise MimeticError("dagger: ENV is required (or --resume)")
        cfg = DaggerConfig(env=args.env, env_options=_parse_options(args.env_option, "--env-option"),
                           policy_options=_parse_options(args.policy_option, "--policy-option"),
                           warm_start=not args.from_scratch, device=args.device, **{k: getattr(args, k) for k in _DAGGER_ARGS})
        cfg.validate()  # before a window opens for a human expert
    if args.nproc != 1:  # this command as N processes on this machine, as `train --nproc` (the workers run it without)
        check_processes(cfg, n=args.nproc)
        mc = learner_config(cfg)  # what the training processes need: a device with N slots, a batch N can share
        args.exit_status = _launch_ranks(argparse.Namespace(nproc=args.nproc, method=cfg.policy, argv=args.argv), mc)
        return
    check_processes(cfg)  # under torchrun: a human expert is refused before its window opens
    expert = None
    if cfg.expert != "scripted":  # a human: the CLI builds the teleop actor, the algorithm only uses it
        from mimetic.envs.spaces import env_sizes
        from mimetic.teleop import TeleopActor, make_input_source

        expert = TeleopActor(make_input_source(cfg.expert), env_sizes(cfg.env, cfg.env_options).act_dim)
    if expert is not None and (args.ray or args.ray_address):
        raise MimeticError(f"dagger: --expert {cfg.expert} is a human at this machine; --ray sends rollouts to other "
                           "processes, so it needs --expert scripted")
    main_rank = distributed.is_main()
    with (_ray_backend(args) if main_rank else contextlib.nullcontext(None)) as backend:  # rank 0 alone rolls out
        rows = run_dagger(cfg, args.out, resume=args.resume, progress=not args.quiet, expert=expert, backend=backend)
    if not main_rank:
        return
    for r in rows:
        print(f"iteration {r['iteration']}: expert labels {r['expert_labels']}, "
              f"validation success {r['val_success']:.2f} [{r['val_ci95'][0]:.2f}, {r['val_ci95'][1]:.2f}]")
    if rows:
        how = "the best validation success" if cfg.select == "best" else "the last iteration"
        print(f"deployed: iteration {rows[-1]['deployed_iteration']} ({how})")
    print(f"dagger -> {args.out} (log {args.out}/metrics.jsonl, plot {args.out}/dagger.png)")


_DAGGER_ARGS = ("policy", "steps", "iterations", "episodes_per_iter", "initial_data", "initial_episodes", "beta", "beta0",
                "gate", "gate_metric", "threshold", "release", "ensemble_size", "expert", "eval_episodes", "num_envs", "seed",
                "select")


def cmd_teleop(args) -> None:
    from mimetic.teleop import make_input_source, record

    source = make_input_source(args.input, fps=args.fps)
    try:
        ds = record(args.env, args.out, args.episodes, source, env_options=_parse_options(args.env_option, "--env-option"),
                    seed=args.seed, gain=args.gain, image_storage=args.image_storage, video_codec=args.video_codec)
    finally:
        source.close()
    marked = ds.extra("marked_success")[ds.episode_starts]
    print(f"{ds.root}: {ds.num_episodes} episodes ({int(marked.sum())} marked success), {ds.num_frames} frames")


def cmd_inspect(args) -> None:
    from mimetic.analysis.inspect import format_summary, inspect_dataset

    summary = inspect_dataset(args.data, args.out)
    print(format_summary(summary))
    _write_json(args.json, summary)


def cmd_compare(args) -> None:
    from mimetic.analysis.compare import compare, format_table

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        raise MimeticError(f"compare: --seeds expects comma-separated integers, got {args.seeds!r}") from None
    env_options = _parse_options(args.env_option, "--env-option") if args.env_option else None
    with _ray_backend(args) as backend:
        res = compare(args.env, methods, args.data, seeds, args.out, episodes=args.episodes, steps=args.steps,
                      env_options=env_options, options=_parse_options(args.option, "--option"), progress=not args.quiet,
                      device=args.device, backend=backend)
    print(format_table(res), end="")
    print(f"table: {Path(args.out) / 'compare.md'}, plots: {', '.join(res['plots'].values())}")


def cmd_shift(args) -> None:
    from mimetic.analysis.shift import format_shift, shift

    env_options = _parse_options(args.env_option, "--env-option") if args.env_option else None
    out = args.out if args.out is not None else Path(args.run) / "shift"
    res = shift(args.run, args.data, args.env, episodes=args.episodes, out=out, env_options=env_options,
                progress=not args.quiet)
    print(format_shift(res))
    _write_json(args.json, res)


def cmd_report(args) -> None:
    from mimetic.analysis.report import render_report

    print(f"report: {render_report(args.paths, args.out)}")


def cmd_reward(args) -> None:
    """Evaluate and plot the learned reward of a run (maxent-irl, gail, airl), dispatching on its method."""
    from mimetic.data.io import read_json

    run = Path(args.run)
    train = run / "train.json"
    method = (read_json(train, "training run") if train.is_file() else read_json(run / "config.json", "run config")).get("method")
    env_options = _parse_options(args.env_option, "--env-option") if args.env_option else None
    if method == "maxent-irl":
        from mimetic.algos.irl import reward_report

        report = reward_report(run, env=args.env, env_options=env_options)  # refuses an env whose features do not match
    elif method in ("gail", "airl"):
        from mimetic.algos.adversarial.report import reward_report

        report = reward_report(run, env=args.env, env_options=env_options, episodes=args.episodes)
    else:
        raise MimeticError(f"{run}: no learned reward (method {method!r}; rewards come from maxent-irl, gail, airl)")
    shown = {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    print(f"{run} ({method}) on {report['env']}: " + ", ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.3f}"
                                                             for k, v in shown.items())
          + f"; plot {report['plot']}")
    _write_json(args.json, report)


def cmd_quickstart(args) -> None:
    from mimetic.quickstart import quickstart

    quickstart(args.out, progress=not args.quiet)


# ------------------------------------------------------------------------------ parser
def _train_method(argv: list[str] | None) -> str | None:
    """The METHOD of `mimetic [global options] train METHOD ...`, or None: the parser adds the options
    of that method only, so that building the parser imports no method module (nor torch)."""
    args = list(argv or [])
    i = 0
    while i < len(args) and args[i].startswith("-"):  # global options: -q, --threads N, --log-to SINKS
        i += 2 if args[i] in ("--threads", "--log-to") else 1
    return args[i + 1] if i + 1 < len(args) and args[i] == "train" else None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv` (only the training method named in it gets its Config options)."""
    method = _train_method(argv)
    p = argparse.ArgumentParser(prog="mimetic", description="Teach robots by demonstration.")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: small state-based networks run fastest on one thread)")
    p.add_argument("--log-to", default=None, metavar="SINKS",
                   help="also send training metrics to tensorboard (RUN/tensorboard/), wandb (offline unless WANDB_MODE "
                        "is set; RUN/wandb/) or tensorboard,wandb; metrics.jsonl stays the record")
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("envs", help="list the task names mimetic knows")
    s.set_defaults(fn=cmd_envs)

    s = sub.add_parser("collect", help="collect expert demonstrations into a dataset")
    s.add_argument("env")
    s.add_argument("--episodes", type=int, required=True)
    s.add_argument("--out", required=True, help="dataset directory (created, or appended to)")
    s.add_argument("--seed", type=int, default=None, help="first seed (default: continue after the dataset's last)")
    s.add_argument("--only-success", action="store_true", help="keep only successful episodes")
    s.add_argument("--expert-noise", type=float, default=0.0, metavar="SIGMA",
                   help="DART: execute the expert's action plus Gaussian noise (SIGMA x each action's half-range) and "
                        "record the expert's own action, so the demonstrations show recoveries (default 0: clean)")
    s.add_argument("--num-envs", type=int, default=8)
    s.add_argument("--env-option", action="append", metavar="KEY=VALUE",
                   help="task option, e.g. cameras=corner4,gripperPOV image_size=84 state=proprio")
    s.add_argument("--workers", type=int, default=None,
                   help="environment worker processes (default: 2 when the task renders cameras, else 1)")
    s.add_argument("--image-storage", choices=["video", "png"], default=None,
                   help="cameras as MP4 video (default, LeRobot's layout) or lossless PNG in the data files")
    s.add_argument("--video-codec", choices=["av1", "h264"], default=None, help="video codec (default av1, LeRobot's)")
    _add_ray(s, "the episodes (the dataset is written here)")
    s.set_defaults(fn=cmd_collect)

    s = sub.add_parser("train", help="train a policy: mimetic train METHOD --data DIR --out RUN")
    msub = s.add_subparsers(dest="method", required=True)
    from mimetic.algos import METHODS, method_module  # the registry only: no method module is imported here

    for name in METHODS:
        m = msub.add_parser(name, help=f"train with {name} (its options: mimetic train {name} --help)")
        m.add_argument("--data", help="dataset directory")
        m.add_argument("--frame-cache-mb", type=float, default=None, metavar="MB",
                       help="decoded camera frames held in memory at most (default $MIMETIC_FRAME_CACHE_MB, else 1024): "
                            "a dataset whose frames need more is decoded on demand through a cache of this size")
        m.add_argument("--out", required=True, help="run directory")
        m.add_argument("--env", default=None, help="environment (default: the one the dataset was collected in)")
        m.add_argument("--env-option", action="append", metavar="KEY=VALUE")
        m.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
        m.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="train as N processes on this machine with torch DistributedDataParallel (at most its CPU "
                            "cores, or GPUs on cuda; --batch-size is the global batch, divisible by N); supervised "
                            "methods only. Several machines: torchrun ... -m mimetic train METHOD (README)")
        if name == method:  # only the method being run (or asked for --help) is imported, for its Config
            add_dataclass_options(m, method_module(name).Config)
        m.set_defaults(fn=cmd_train)

    s = sub.add_parser("eval", help="evaluate a policy checkpoint (or the expert) on an environment, or on every task "
                       "of a suite (metaworld/MT10, reach-corners, ...: a per-task table and the mean)")
    s.add_argument("run", nargs="?", help="run / checkpoint directory")
    s.add_argument("--expert", action="store_true", help="evaluate the environment's scripted expert")
    s.add_argument("--env", default=None)
    s.add_argument("--env-option", action="append", metavar="KEY=VALUE")
    s.add_argument("--episodes", type=int, default=100)
    s.add_argument("--seed", type=int, default=None, help="first evaluation seed (default 1000000)")
    s.add_argument("--num-envs", type=int, default=16)
    s.add_argument("--workers", type=int, default=None,
                   help="environment worker processes (default: 2 when a simulator renders cameras, else 1); "
                        "the episodes do not depend on it")
    s.add_argument("--temporal-ensemble", type=float, default=None, metavar="M",
                   help="ACT-style temporal ensembling with weights exp(-M*i)")
    s.add_argument("--sampling-steps", type=int, default=None, metavar="N",
                   help="diffusion / flow: sample with N DDIM / Euler steps (default: the checkpoint's num_inference_steps)")
    s.add_argument("--json", default=None, help="write the results as JSON here")
    s.add_argument("--video", default=None, metavar="DIR",
                   help="also record the first --video-episodes evaluation seeds as MP4s in DIR "
                        "(episode-SEED-success.mp4 / -failure.mp4, one per episode with every camera side by side, "
                        "episode length + 1 frames; DIR/videos.json lists them). Without cameras in --env-option the "
                        "task's default camera is added for these episodes only; the evaluation is not changed")
    s.add_argument("--video-episodes", type=int, default=4, metavar="N", help="episodes to record (default 4)")
    s.add_argument("--video-codec", default="av1", choices=["av1", "h264"],
                   help="video codec (default av1, which Chromium and Firefox play; h264 for other players)")
    s.add_argument("--tasks", default=None, metavar="A,B",
                   help="a suite (--env metaworld/MT10, reach-corners, ...): evaluate only these of its tasks")
    s.add_argument("--instruction", default=None, metavar="TEXT",
                   help="tell an instruction-conditioned policy these words instead of the task's own (one task, "
                        "not a suite; a policy with a pretrained --text-encoder embeds any wording, the learned "
                        "encoder only its training instructions)")
    s.add_argument("--demo", default=None, metavar="DATASET",
                   help="a policy conditioned on a demonstration (--condition demo): give it, for each task, one "
                        "episode of DATASET whose task string is the task's instruction, drawn with --seed")
    _add_ray(s, "the evaluation episodes (policies act on the workers' CPUs)")
    _add_device(s)
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("convert", help="import a dataset (LeRobot v3/v2.1, robomimic, zarr, imitation), or export one")
    s.add_argument("src")
    s.add_argument("dst", help="new dataset directory (must not exist)")
    s.add_argument("--format", default=None, help="source format (default: detected): lerobot, lerobot-v2, robomimic, zarr, imitation")
    s.add_argument("--to", choices=["mimetic", "lerobot"], default="mimetic",
                   help="lerobot: export a mimetic dataset as a clean LeRobot v3.0 folder")
    s.add_argument("--obs-keys", default=None, help="source keys a,b,c: vector keys are concatenated into observation.state "
                   "in this order; camera keys, if any, select the cameras kept")
    s.add_argument("--action-key", default=None)
    s.add_argument("--filter-key", default=None, help="robomimic: only the demos in mask/<filter-key>")
    s.add_argument("--skip-images", action="store_true", help="convert no camera (the state only); by default every "
                   "camera comes across, or those --obs-keys names")
    s.add_argument("--image-storage", choices=["video", "png"], default=None,
                   help="how cameras are stored: video (MP4, LeRobot's default) or png (lossless, in the data files)")
    s.add_argument("--video-codec", choices=["av1", "h264"], default=None, help="codec of the camera videos (default av1)")
    s.add_argument("--fps", type=int, default=None)
    s.add_argument("--env", default=None, help="record this environment as the one the data belongs to")
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser("dagger", help="DAgger / HG-DAgger: the learner acts, the expert labels, retrain")
    s.add_argument("env", nargs="?", help="environment (not needed with --resume)")
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--resume", action="store_true", help="continue the run in --out after its last completed iteration")
    s.add_argument("--policy", default="bc", help="supervised method to train each iteration (bc, act, diffusion, flow, ...)")
    s.add_argument("--policy-option", action="append", metavar="KEY=VALUE", help="a field of the method's Config")
    s.add_argument("--steps", type=int, default=None, help="training steps per iteration (default: the method's own, "
                   "as plain BC trains)")
    s.add_argument("--from-scratch", action="store_true", help="retrain each iteration from new weights "
                   "(default: start from the previous iteration's, normalization refitted)")
    s.add_argument("--select", default="best", help="deploy: best (highest validation success, earliest on ties) | last")
    s.add_argument("--iterations", type=int, default=5, help="iterations after the initial one")
    s.add_argument("--episodes-per-iter", type=int, default=10)
    s.add_argument("--data", dest="initial_data", default=None, help="initial demonstrations (default: collect from the expert)")
    s.add_argument("--initial-episodes", type=int, default=10, help="expert episodes for iteration 0 without --data")
    s.add_argument("--beta", default="exponential", help="per-step probability of executing the expert's action: "
                   "constant (beta0), linear (beta0 at iteration 1 -> 0 at the last), exponential (beta0**i)")
    s.add_argument("--beta0", type=float, default=0.5)
    s.add_argument("--gate", default=None, help="HG-DAgger: scripted | ensemble | human (the expert takes over when it fires)")
    s.add_argument("--gate-metric", default="action", help="scripted gate: action (learner-expert distance) | state (off the data)")
    s.add_argument("--threshold", type=float, default=0.3, help="the gate fires above this")
    s.add_argument("--release", type=float, default=None, help="and hands back below this (default threshold/2)")
    s.add_argument("--ensemble-size", type=int, default=3)
    s.add_argument("--expert", default="scripted", help="scripted | keyboard | gamepad (a human, through pygame)")
    s.add_argument("--eval-episodes", type=int, default=20, help="validation episodes per iteration")
    s.add_argument("--num-envs", type=int, default=8)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--env-option", action="append", metavar="KEY=VALUE")
    _add_ray(s, "the rollouts and validation episodes (training stays here; under torchrun / --nproc, rank 0 drives Ray)")
    s.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train each iteration's learner as N processes on this machine with torch "
                        "DistributedDataParallel (at most its CPU cores, or GPUs on cuda; the learner's batch size is "
                        "the global batch, divisible by N); rank 0 alone rolls out, labels, validates and writes. "
                        "Several machines: torchrun ... -m mimetic dagger (README)")
    _add_device(s)
    s.set_defaults(fn=cmd_dagger)

    s = sub.add_parser("teleop", help="record human demonstrations by keyboard or gamepad, seeing the camera view "
                       "(needs pygame)")
    s.add_argument("env")
    s.add_argument("--out", required=True, help="dataset directory (created, or appended to)")
    s.add_argument("--episodes", type=int, default=10)
    s.add_argument("--input", default="keyboard", help="keyboard | gamepad")
    s.add_argument("--gain", type=float, default=1.0, help="action = gain * stick/key axes")
    s.add_argument("--fps", type=float, default=10.0, help="control rate")
    s.add_argument("--seed", type=int, default=None, help="first seed (default: continue after the dataset's last)")
    s.add_argument("--env-option", action="append", metavar="KEY=VALUE",
                   help="task option; cameras=... are shown and recorded (without it the task's default camera is "
                        "shown, not recorded)")
    s.add_argument("--image-storage", choices=["video", "png"], default=None,
                   help="cameras as MP4 video (default, LeRobot's layout) or lossless PNG in the data files")
    s.add_argument("--video-codec", choices=["av1", "h264"], default=None, help="video codec (default av1, LeRobot's)")
    s.set_defaults(fn=cmd_teleop)

    s = sub.add_parser("inspect", help="summarize a dataset: lengths, success, per-dimension statistics, cameras, plots")
    s.add_argument("data", help="dataset directory")
    s.add_argument("--out", default=None, help="folder for the PNG plots, and per camera frames_<camera>.png: "
                   "8 evenly spaced frames of each of the first 3 episodes (none without it)")
    s.add_argument("--json", default=None, help="write the summary as JSON here")
    s.set_defaults(fn=cmd_inspect)

    s = sub.add_parser("compare", help="train several methods on the same demos and evaluate them on the same seeds")
    s.add_argument("env")
    s.add_argument("--methods", required=True, help="comma-separated training methods, e.g. bc,act,diffusion; all: every supervised method")
    s.add_argument("--data", required=True, help="dataset directory")
    s.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    s.add_argument("--episodes", type=int, default=50, help="evaluation episodes per run (default 50)")
    s.add_argument("--steps", type=int, default=None, help="training steps for every method (default: each method's)")
    s.add_argument("--option", action="append", metavar="FIELD=VALUE",
                   help="set a Config field of every method, e.g. obs_noise=0.1 (repeatable)")
    s.add_argument("--env-option", action="append", metavar="KEY=VALUE")
    s.add_argument("--out", required=True, help="folder for the runs, compare.md/json and plots (re-run to resume)")
    _add_ray(s, "the evaluations (training stays here)")
    _add_device(s)
    s.set_defaults(fn=cmd_compare)

    s = sub.add_parser("shift", help="distribution shift between expert (dataset) and learner (policy rollouts) states")
    s.add_argument("run", help="run / checkpoint directory")
    s.add_argument("--data", required=True, help="the expert dataset")
    s.add_argument("--env", default=None, help="environment (default: the policy's)")
    s.add_argument("--env-option", action="append", metavar="KEY=VALUE")
    s.add_argument("--episodes", type=int, default=50, help="learner episodes (default 50, evaluation seeds)")
    s.add_argument("--out", default=None, help="folder for plots and shift.json (default RUN/shift, found by report)")
    s.add_argument("--json", default=None, help="also write the results as JSON here")
    s.set_defaults(fn=cmd_shift)

    s = sub.add_parser("report", help="one self-contained HTML page for runs, compare folders, datasets and rollout videos")
    s.add_argument("paths", nargs="+", metavar="PATH", help="run directories (their RUN/video*/ rollout videos included), "
                   "compare folders, dataset directories, folders written by eval --video")
    s.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("reward", help="evaluate and plot the learned reward of a maxent-irl / gail / airl run")
    s.add_argument("run", help="run directory")
    s.add_argument("--env", default=None, help="environment (default: the one the run was trained in)")
    s.add_argument("--env-option", action="append", metavar="KEY=VALUE")
    s.add_argument("--episodes", type=int, default=10, help="gail/airl: expert and random episodes to compare on")
    s.add_argument("--json", default=None, help="write the report as JSON here")
    s.set_defaults(fn=cmd_reward)

    s = sub.add_parser("quickstart", help="collect reach demos, train BC, evaluate expert vs BC")
    s.add_argument("--out", default=None, help="working directory (default: a new mimetic-quickstart-* folder)")
    s.set_defaults(fn=cmd_quickstart)
    return p


_TORCH_VERBS = {"train", "eval", "dagger", "compare", "shift", "reward", "quickstart"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.threads > 0 and args.verb in _TORCH_VERBS:  # the other verbs never import torch
        import torch

        torch.set_num_threads(args.threads)
    args.given_flags = {a.split("=")[0] for a in argv if a.startswith("--")}
    args.argv = argv
    args.steps_given = "--steps" in args.given_flags
    if getattr(args, "seed", 0) is None and args.verb == "eval":
        from mimetic.evaluate import EVAL_SEED

        args.seed = EVAL_SEED
    try:
        if args.log_to:  # checked before any work: a missing package is a one-line error now
            from mimetic.algos.run_dir import log_to

            log_to(args.log_to)
        args.fn(args)
    except MimeticError as e:
        if not getattr(e, "quiet", False):  # quiet: a line another process prints (rank 0, or train --nproc)
            print(f"mimetic: error: {e}", file=sys.stderr)
        return getattr(e, "exit_status", 2)
    except KeyboardInterrupt:
        print("mimetic: interrupted", file=sys.stderr)
        return 130
    return getattr(args, "exit_status", 0)  # train --nproc: 2 if a training process failed


if __name__ == "__main__":
    sys.exit(main())
