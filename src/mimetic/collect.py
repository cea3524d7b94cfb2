"""Collect demonstrations from an expert into a dataset on disk.

Episodes are appended in batches as they finish, each batch committed atomically, so an
interrupted collection leaves a dataset holding only complete episodes. The seeds used are
recorded (info.json "mimetic.next_seed") so appending later continues with fresh seeds. A suite's tasks are
collected one after the other on the same seeds: an interrupted suite collection keeps the complete episodes
of the tasks it reached, and a later `collect` continues every task after the highest seed used.
The dataset's fps is the environment's control rate, and its vector features carry the task's
per-dimension names where the task gives them (`feature_names`). The environments may run in worker processes
(`workers`, see `mimetic.rollout.rollout`; started once for the whole collection), or in Ray tasks (`backend`,
see `mimetic.shards`: batches run ahead on the cluster and are appended here, in seed order, by this process
only); the episodes do not depend on either.
"""

from __future__ import annotations

from pathlib import Path

from mimetic.actors import NoisyExpert
from mimetic.data.dataset import Dataset
from mimetic.errors import MimeticError
from mimetic.progress import progress_bar
from mimetic.shards import RayBackend, Rollouts


def collect(env: str, out: str | Path, episodes: int, *, seed: int | None = None, only_success: bool = False,
            env_options: dict | None = None, num_envs: int = 8, progress: bool = True, expert=None,
            max_attempts_factor: int = 10, workers: int | None = None, image_storage: str | None = None,
            video_codec: str | None = None, backend: RayBackend | None = None, expert_noise: float = 0.0) -> Dataset:
    """Run the expert of `env` and write `episodes` episodes to the dataset `out` (created or appended to).

    `env` may be a suite (`mimetic.envs.suites`: `metaworld/MT10`, `reach-corners`, a comma-separated list): then
    `episodes` episodes of each task, on the same seeds, each task run with `env_options` plus the options it
    fixes, by its own expert, every episode's task string its task's instruction; the dataset's env is the suite
    and info.json's "mimetic.suite" lists its tasks (name, env, instruction, options). A single task's episodes
    carry `instruction_for(env, env_options)` (a Meta-World task's instruction, else the env name).
    `image_storage` ("video" | "png") and `video_codec` ("av1" | "h264") choose how a new dataset stores camera
    frames (None: the Dataset's default); an existing dataset keeps its own.
    `expert_noise` > 0 collects DART demonstrations (`mimetic.actors.NoisyExpert`): the expert's action plus Gaussian
    noise of that many half-ranges is executed, the expert's own action is recorded as `action` (the executed one as
    the extra column `executed_action`); info.json records the noise. An existing dataset keeps the noise it has."""
    from mimetic.envs.suites import SuiteTask, check_task_options, instruction_for, suite_tasks

    if episodes <= 0:
        raise MimeticError(f"--episodes must be positive, got {episodes}")
    if not 0.0 <= expert_noise < 10.0:
        raise MimeticError(f"--expert-noise must be in [0, 10) (a fraction of the action range), got {expert_noise}")
    out = Path(out)
    env_options = dict(env_options or {})
    tasks = suite_tasks(env)
    if tasks is not None and expert is not None:
        raise MimeticError(f"collect {env}: a suite is collected by each task's own expert, not a given one")
    existing = None
    if out.exists():
        if (out / "meta/info.json").exists():
            existing = Dataset.load(out)
            if existing.env_name not in (None, env) or (existing.env_name == env and existing.env_options != env_options):
                raise MimeticError(f"dataset {out} was collected in {existing.env_name!r} {existing.env_options}, "
                                   f"not {env!r} {env_options}: collect into another --out")
            had = float(existing.info.get("mimetic", {}).get("expert_noise", 0.0))
            if had != expert_noise:
                raise MimeticError(f"dataset {out} was collected with --expert-noise {had}, not {expert_noise}: "
                                   f"collect into another --out")
        elif out.is_file() or any(out.iterdir()):
            raise MimeticError(f"{out} exists and is not a dataset: choose another --out")
    if seed is None:
        seed = int(existing.info.get("mimetic", {}).get("next_seed", 0)) if existing else 0
    if tasks is None:
        tasks = [SuiteTask(env, env, instruction_for(env, env_options))]
        suite_meta = {}
    else:
        suite_meta = {"suite": [t.to_json() for t in tasks]}
        check_task_options(tasks, env_options, f"collect {env}")
    if expert_noise:
        suite_meta["expert_noise"] = expert_noise
    ds, next_seed = existing, seed
    for t in tasks:
        ds, end = _collect_task(t, env, out, episodes, seed, ds, {**env_options, **t.options}, env_options,
                                dict(suite_meta, next_seed=next_seed), only_success=only_success, num_envs=num_envs,
                                progress=progress, expert=expert, max_attempts_factor=max_attempts_factor,
                                workers=workers, image_storage=image_storage, video_codec=video_codec, backend=backend,
                                expert_noise=expert_noise)
        next_seed = max(next_seed, end)
    return ds


def _collect_task(task, env: str, out: Path, episodes: int, seed: int, ds: Dataset | None, task_options: dict,
                  env_options: dict, meta: dict, *, only_success: bool, num_envs: int, progress: bool, expert,
                  max_attempts_factor: int, workers: int | None, image_storage: str | None, video_codec: str | None,
                  backend: RayBackend | None, expert_noise: float = 0.0) -> tuple[Dataset | None, int]:
    """`episodes` episodes of one task (its env run with `task_options`) from seed `seed`, appended to `ds` (created
    at `out` as the dataset of `env` with `env_options` if None); returns the dataset and the next unused seed.
    `meta` goes into info.json's "mimetic" section with every commit (its next_seed is raised as seeds are used)."""
    from mimetic.envs import make_expert

    create_options = {k: v for k, v in (("image_storage", image_storage), ("video_codec", video_codec)) if v is not None}
    # built first, so an unknown env or bad options fail before the expert is asked for
    batch = num_envs if only_success else min(num_envs, episodes)
    runs = Rollouts(task.env, None, num_envs=batch, env_options=task_options, task=task.instruction, workers=workers,
                    backend=backend)
    bar = results = None
    try:
        sizes = runs.info.sizes
        fps = sizes.fps
        names = {k: list(f.names) for k, f in sizes.features.items() if f.names is not None}
        if names:  # the task's per-dimension names (x, y, goal_x, ...) go into info.json
            create_options["feature_names"] = names
        runs.actor = expert if expert is not None else make_expert(task.env, **task_options)
        if expert_noise:
            if sizes.discrete:
                raise MimeticError(f"--expert-noise needs continuous actions; {task.name} has {sizes.n_actions} choices")
            runs.actor = NoisyExpert(runs.actor, expert_noise, sizes.low, sizes.high)
        kept, next_seed, attempts = 0, seed, 0
        what = task.name if task.name == env else f"{env}: {task.name}"
        bar = progress_bar(progress, total=episodes, desc=f"collect {what}" + (" (Ray)" if backend else ""), unit="ep")

        def seed_batches():  # every batch the loop below may ask for, in order (Ray runs some ahead)
            s = seed
            while only_success or s < seed + episodes:
                n = num_envs if only_success else min(num_envs, seed + episodes - s)
                yield list(range(s, s + n))
                s += n

        results = runs.batches(seed_batches())
        while kept < episodes:
            if attempts >= max_attempts_factor * episodes:
                raise MimeticError(f"the expert of {task.name} succeeded in only {kept} of {attempts} episodes; "
                                   f"stopped before reaching {episodes} (drop --only-success?)")
            eps = next(results)
            if expert_noise:
                eps = [NoisyExpert.relabel(e) for e in eps]
            n = len(eps)
            attempts += n
            next_seed += n
            if only_success:
                eps = [e for e in eps if e.success][: episodes - kept]
            meta = {**meta, "next_seed": max(meta.get("next_seed", 0), next_seed)}
            if eps:
                if ds is None:
                    ds = Dataset.create(out, eps, env=env, env_options=env_options, fps=fps, meta=meta, **create_options)
                else:
                    ds.append(eps, meta=meta)
            kept += len(eps)
            bar.update(len(eps))
    finally:
        if bar is not None:
            bar.close()
        if results is not None:
            results.close()  # batches Ray ran ahead and the loop did not need are cancelled
        runs.close()
    return ds, next_seed
