"""Frames per second of env.step with a camera, in one process: Meta-World (MuJoCo) and reach (numpy).

Meta-World pick-place-v3 with camera corner4 at 84x84 and 128x128, rendered by the env's own
mujoco.Renderer with mimetic's fast settings (no multisampling, shadows, reflections or skybox) and
with MuJoCo's defaults; reach with its numpy top camera at 64x64. Each figure is the median of
`--repeats` runs of env.step (random actions; the observation includes the frame) with the
configurations interleaved, so a change in the machine's load hits them alike; the state-only
step of the same env (no camera) is the baseline of the same run. One process, one env: the
throughput of several workers is measured elsewhere.

    python benchmarks/render_throughput.py              # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def steps_per_second(env, seconds: float, min_steps: int, rng) -> float:
    """env.step calls per second (reset when an episode ends, not timed) over about `seconds`."""
    env.reset(seed=0)
    env.step(env.action_space.sample())  # a first step: renderer and caches warm
    n, spent, done = 0, 0.0, False
    while spent < seconds or n < min_steps:
        actions = rng.uniform(-1, 1, (10, *env.action_space.shape))
        t0 = time.perf_counter()
        for a in actions:  # ten steps per clock reading (reach steps take microseconds)
            n += 1
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                done = True
                break
        spent += time.perf_counter() - t0
        if done:
            env.reset(seed=n)
            done = False
    return n / spent


def frames_per_second(env, camera: str, seconds: float) -> float:
    """env.render_camera(camera) calls per second (no physics step) over about `seconds`."""
    env.reset(seed=0)
    env.render_camera(camera)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            env.render_camera(camera)
        n += 10
    return n / (time.perf_counter() - t0)


def gl_renderer_name(env) -> str:
    """The OpenGL renderer string (e.g. llvmpipe for Mesa's software renderer) of the env's renderer."""
    try:
        from OpenGL import GL

        env.unwrapped._renderer._gl_context.make_current()
        return GL.glGetString(GL.GL_RENDERER).decode()
    except Exception as e:  # noqa: BLE001 - a name for the report only
        return f"unknown ({type(e).__name__})"


def configurations():
    from mimetic.envs.metaworld import MetaWorldEnv
    from mimetic.envs.reach import ReachEnv

    task = "pick-place-v3"
    yield "metaworld state only", lambda: MetaWorldEnv(task), 1.5, 50
    for size in (84, 128):
        yield (f"metaworld corner4 {size}x{size} fast",
               lambda size=size: MetaWorldEnv(task, cameras="corner4", image_size=size), 3.0, 20)
        yield (f"metaworld corner4 {size}x{size} default",
               lambda size=size: MetaWorldEnv(task, cameras="corner4", image_size=size, fast_render=False), 3.0, 8)
    yield "reach state only", lambda: ReachEnv(), 1.0, 1000
    yield "reach top 64x64", lambda: ReachEnv(cameras="top", image_size=64), 1.0, 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "render_throughput"))
    args = parser.parse_args()

    from mimetic.envs.render import setup_gl

    backend = setup_gl()
    rng = np.random.default_rng(0)
    configs = list(configurations())
    envs = {name: make() for name, make, _, _ in configs}
    runs: dict[str, list[float]] = {name: [] for name in envs}
    render_only = {"metaworld corner4 84x84 fast": ("corner4", 2.0), "reach top 64x64": ("top", 1.0)}
    frames: dict[str, list[float]] = {name: [] for name in render_only}
    for rep in range(args.repeats):
        for name, _, seconds, min_steps in configs:
            runs[name].append(steps_per_second(envs[name], seconds, min_steps, rng))
            print(f"repeat {rep}: {name}: {runs[name][-1]:.1f} steps/s", flush=True)
        for name, (camera, seconds) in render_only.items():
            frames[name].append(frames_per_second(envs[name], camera, seconds))
            print(f"repeat {rep}: {name}: {frames[name][-1]:.1f} frames/s (render only)", flush=True)
    gl_name = gl_renderer_name(envs["metaworld corner4 84x84 fast"])
    default_env = envs["metaworld corner4 84x84 default"].unwrapped
    import mujoco

    settings = {
        "fast": "model.vis.quality.offsamples = 0; scene flags mjRND_SHADOW, mjRND_REFLECTION, mjRND_SKYBOX off",
        "default": f"the model's own (offsamples = {default_env._env.model.vis.quality.offsamples}, shadows "
                   f"{'on' if default_env._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] else 'off'}, "
                   f"reflections {'on' if default_env._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] else 'off'})",
    }
    for env in envs.values():
        env.close()

    med = {name: statistics.median(v) for name, v in runs.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {
        "command": "python benchmarks/render_throughput.py" + (f" --repeats {args.repeats}" if args.repeats != 3 else ""),
        "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
                   f"{os.getloadavg()[0]:.1f} at the end (shared machine)",
        "mujoco_gl": backend, "gl_renderer": gl_name, "settings": settings,
        "steps_per_second": {name: {"median": round(med[name], 1), "runs": [round(x, 1) for x in v]}
                             for name, v in runs.items()},
        "frames_per_second_render_only": {name: {"median": round(statistics.median(v), 1), "runs": [round(x, 1) for x in v]}
                                          for name, v in frames.items()},
        "ratios": {
            f"fast / default {s}x{s}": round(med[f"metaworld corner4 {s}x{s} fast"] / med[f"metaworld corner4 {s}x{s} default"], 2)
            for s in (84, 128)
        } | {
            "metaworld fast 84x84 / state only": round(med["metaworld corner4 84x84 fast"] / med["metaworld state only"], 3),
            "reach top 64x64 / state only": round(med["reach top 64x64"] / med["reach state only"], 3),
        },
    }
    write(Path(args.out), result)


def write(out: Path, result: dict) -> None:
    lines = [
        "# Render throughput: env.step with a camera, one process",
        "",
        f"`{result['command']}` — commit {result['commit']}, {result['date']}, {result['machine']}.",
        f"MUJOCO_GL={result['mujoco_gl']}, OpenGL renderer: {result['gl_renderer']}.",
        "Steps per second of env.step (the observation includes the frame), median of the runs "
        "(interleaved; the runs in brackets). Fast settings: " + result["settings"]["fast"] + "; default: "
        + result["settings"]["default"] + ".",
        "On a shared machine (see the load average) single runs vary by 2x or more: the ratios within a run "
        "(fast vs default, camera vs state only) are the figures to compare, not the absolute rates.",
        "",
        "| configuration | steps/s (median) | runs |",
        "|---|---:|---|",
    ]
    for name, r in result["steps_per_second"].items():
        lines.append(f"| {name} | {r['median']:.1f} | {', '.join(f'{x:.1f}' for x in r['runs'])} |")
    lines += ["", "Render only (env.render_camera, no physics step):", "",
              "| configuration | frames/s (median) | runs |", "|---|---:|---|"]
    for name, r in result["frames_per_second_render_only"].items():
        lines.append(f"| {name} | {r['median']:.1f} | {', '.join(f'{x:.1f}' for x in r['runs'])} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in result["ratios"].items()]
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(result, indent=2) + "\n"), (".md", "\n".join(lines) + "\n")):
        path = out.with_suffix(suffix)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
