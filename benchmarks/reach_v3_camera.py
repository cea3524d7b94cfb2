"""How much of reach-v3's goal does one camera show? (a diagnostic for the Meta-World image protocol)

In the image protocol the policy sees camera `corner4` and its own hand and gripper; reach-v3's goal is a small
sphere floating in a 20 x 10 x 25 cm box (x, y, z), and with shadows off (the protocol's rendering) nothing in
the image tells how far along the camera's ray it floats. Every goal position on the ray through the goal's
pixel, inside the goal box, makes the same image.

For each episode's goal (`--episodes` seeds from the evaluation seeds 1,000,000.. or the validation seeds
2,000,000..), this script finds that ray segment, and the best a policy that reads the image perfectly can do
if it goes to ONE point (what imitating the expert's straight reach does): the point of the segment with the
most prior mass (goals uniform in the box, so mass along the ray grows as the distance squared) within the 5 cm
success radius. It reports the segment's median length, the fraction of goals whose segment is longer than the
success ball's 10 cm diameter, and that policy's success rate: the ceiling for reach from one camera without a
depth cue. It measures geometry only (no policy is trained).

    python benchmarks/reach_v3_camera.py --seeds eval --episodes 200 --out benchmarks/results/reach_v3_camera.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mimetic.envs.render import setup_gl

SUCCESS_RADIUS = 0.05  # metres: reach-v3's success distance
CAMERAS = ("corner4", "corner", "corner2", "corner3", "topview")


def ray_segment(cam: np.ndarray, goal: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The unit direction from the camera through the goal and the [s0, s1] distances where that ray is in the box."""
    u = (goal - cam) / np.linalg.norm(goal - cam)
    with np.errstate(divide="ignore"):
        t1, t2 = (low - cam) / u, (high - cam) / u
    return u, float(np.max(np.minimum(t1, t2))), float(np.min(np.maximum(t1, t2)))


def one_point_success(cam: np.ndarray, goal: np.ndarray, low: np.ndarray, high: np.ndarray, n: int = 400) -> tuple[bool, float]:
    """Whether going to the segment's point of most prior mass within the success radius reaches `goal`; the length."""
    u, s0, s1 = ray_segment(cam, goal, low, high)
    s = np.linspace(s0, s1, n)
    w = s**2 / np.sum(s**2)
    pts = cam + s[:, None] * u
    mass = [(w * (np.linalg.norm(pts - p, axis=1) <= SUCCESS_RADIUS)).sum() for p in pts]
    best = pts[int(np.argmax(mass))]
    return bool(np.linalg.norm(best - goal) <= SUCCESS_RADIUS), s1 - s0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", choices=["eval", "val"], default="eval")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    setup_gl()
    import mujoco

    from mimetic.envs.metaworld import make_env
    from mimetic.evaluate import EVAL_SEED, VAL_SEED

    first = EVAL_SEED if args.seeds == "eval" else VAL_SEED
    env = make_env("reach-v3")
    inner = env._env  # the Meta-World env: its goal, goal box and cameras
    low, high = inner._random_reset_space.low[3:], inner._random_reset_space.high[3:]
    goals = []
    for seed in range(first, first + args.episodes):
        env.reset(seed=seed)
        goals.append(np.array(inner._target_pos, dtype=float))
    mujoco.mj_forward(inner.model, inner.data)
    rows = []
    for camera in CAMERAS:
        cam = inner.data.cam_xpos[mujoco.mj_name2id(inner.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)].copy()
        results = [one_point_success(cam, g, low, high) for g in goals]
        lengths = np.array([r[1] for r in results])
        rows.append({"task": "reach-v3", "camera": camera, "seeds": args.seeds, "episodes": args.episodes,
                     "median_segment_m": round(float(np.median(lengths)), 3),
                     "frac_segment_over_10cm": round(float(np.mean(lengths > 2 * SUCCESS_RADIUS)), 3),
                     "one_point_ceiling": round(float(np.mean([r[0] for r in results])), 3)})
        print(json.dumps(rows[-1]))
    env.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
