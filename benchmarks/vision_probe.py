"""Can the camera encoder find the object? A localisation probe for the Meta-World image protocol (issue 12).

Visual policies on the image protocol (camera corner4, 84x84, proprioception-only state) fail most on tasks
whose object or goal moves between episodes. This probe asks the encoder directly: trained with supervision to
read the hand, object and goal positions (the privileged state the policy never sees) from one frame, how
close does it get on episodes it never saw? It isolates the encoder from the policy head and from the noise
of success rates, so encoder settings can be compared in minutes. The probe is a diagnostic only: policies
still learn their encoder from actions alone.

For each task: the scripted expert runs `--episodes` episodes on seeds 0.. (the training frames, as the
demonstrations) and on the validation seeds 2,000,000.. (the test frames); every frame is kept with its
39-d privileged state. Each encoder VARIANT (an `ObservationEncoder` with the policy config's options, the
random crop at training time, the center crop at test time, as in the policies) and a linear head regress the
z-scored positions of the hand (state 0:3), the object (4:7) and the goal (36:39) for `--steps` AdamW steps of
batch 64 (peak `--lr`, cosine decay). Reported: the mean Euclidean error in millimetres on the test frames per
position, beside the error of predicting the training mean (a blind encoder), and the training seconds.

The rows in BENCHMARKS.md (benchmarks/results/vision_probe.jsonl), one process per task, two at a time:

    python benchmarks/vision_probe.py --tasks coffee-push-v3 stick-pull-v3 \
        --variants base kp64 attention px128 nocrop kp64-nocrop c64 gn --work /tmp/vp --out F
    python benchmarks/vision_probe.py ... --variants base --seed 1          # the probe's own noise
    python benchmarks/vision_probe.py ... --variants base --episodes 40     # 4x the training frames
    python benchmarks/vision_probe.py ... --variants base --steps 4000      # 4x the training
    python benchmarks/vision_probe.py ... --variants base --lr 3e-3
    python benchmarks/vision_probe.py --tasks coffee-push-v3 stick-pull-v3 pick-place-v3 --variants base \
        --camera corner2-3dp --work /tmp/vp --out F                     # another camera (also: corner)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from mimetic.envs.render import setup_gl
from mimetic.evaluate import VAL_SEED

TARGETS = {"hand": slice(0, 3), "object": slice(4, 7), "goal": slice(36, 39)}
# variant: (image size, policy-config options of the encoder)
VARIANTS = {
    "base": (84, {}),  # the CPU default: 4 conv layers of 32 channels, first stride 2, 32 keypoints
    "kp64": (84, dict(vision_keypoints=64)),
    "c64": (84, dict(vision_channels=64)),
    "s1": (84, dict(vision_stride=1)),  # feature maps at the crop's full resolution (9x the time per step)
    "attention": (84, dict(vision_pool="attention")),
    "gn": (84, dict(vision_norm="group")),  # a GroupNorm after each conv layer
    "nocrop": (84, dict(crop_ratio=1.0)),  # no random crop: a fixed camera's absolute pixel positions kept
    "kp64-nocrop": (84, dict(vision_keypoints=64, crop_ratio=1.0)),
    "px128": (128, {}),  # the same encoder on 128x128 frames (the 3D Diffusion Policy paper's size)
}


# camera: (Meta-World camera, its position moved to, or None for the stock pose)
CAMERA_POSES = {c: (c, None) for c in ("corner4", "corner", "corner2", "corner3", "topview")}
CAMERA_POSES["corner2-3dp"] = ("corner2", (0.6, 0.295, 0.8))  # the 3D Diffusion Policy paper's image camera


def collect(task: str, episodes: int, seed0: int, size: int, cache: Path,
            camera: str = "corner4") -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, size, size, 3) uint8, privileged states (N, 39)) of the expert's episodes on seeds seed0.."""
    name = "" if camera == "corner4" else f"_{camera}"
    path = cache / f"{task}_{size}px_{seed0}_{episodes}{name}.npz"
    if path.exists():
        d = np.load(path)
        return d["frames"], d["states"]
    from mimetic.envs import make_env, make_expert
    from mimetic.features import PRIVILEGED_STATE, image_key

    cam, pos = CAMERA_POSES[camera]
    env = make_env(f"metaworld/{task}", cameras=cam, image_size=size, state="proprio")
    if pos is not None:  # read by the next reset's forward pass
        import mujoco

        model = env.unwrapped._env.model
        model.cam_pos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam)] = pos
    expert = make_expert(f"metaworld/{task}")
    frames, states = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed0 + i)
        done = False
        while not done:
            frames.append(obs[image_key(cam)])
            states.append(obs[PRIVILEGED_STATE])
            obs, _, terminated, truncated, _ = env.step(expert.act(obs[PRIVILEGED_STATE][None])[0])
            done = terminated or truncated
    env.close()
    out = np.stack(frames), np.stack(states).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, frames=out[0], states=out[1])
    return out


def positions(states: np.ndarray) -> np.ndarray:
    return np.concatenate([states[:, s] for s in TARGETS.values()], axis=1)  # (N, 9)


def probe(variant: str, train: tuple, test: tuple, steps: int, seed: int, lr: float = 1e-3) -> dict:
    from mimetic.features import Feature, image_key
    from mimetic.policies.base import PolicyConfig, feature_entry
    from mimetic.policies.encoders import ObservationEncoder

    size, options = VARIANTS[variant]
    key = image_key("camera")  # the frames of whichever --camera was collected
    cfg = PolicyConfig(obs_dim=0, act_dim=1, input_features={
        key: feature_entry(Feature("image", "uint8", (size, size, 3)))}, **options)
    torch.manual_seed(seed)
    enc = ObservationEncoder(cfg)
    head = torch.nn.Linear(enc.output_dim, 9)
    y_train, y_test = positions(train[1]), positions(test[1])
    mean, std = y_train.mean(0), y_train.std(0) + 1e-6
    frames = torch.from_numpy(train[0])
    target = torch.from_numpy((y_train - mean) / std)
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    enc.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(len(frames), (64,), generator=gen)
        pred = head(enc(torch.zeros(64, 1, 0), {key: frames[idx][:, None]})[:, 0])
        loss = torch.nn.functional.mse_loss(pred, target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    enc.eval()
    with torch.no_grad():
        test_frames = torch.from_numpy(test[0])
        pred = torch.cat([head(enc(torch.zeros(len(b), 1, 0), {key: b[:, None]})[:, 0])
                          for b in test_frames.split(256)]).numpy() * std + mean
    row = {"variant": variant, "image_size": size, "options": options, "steps": steps, "lr": lr, "seed": seed,
           "train_s": round(train_s, 1),
           "train_frames": len(frames), "test_frames": len(test_frames), "final_loss": round(float(loss), 4)}
    for i, name in enumerate(TARGETS):
        cols = slice(3 * i, 3 * i + 3)
        row[f"{name}_mm"] = round(1000 * float(np.linalg.norm(pred[:, cols] - y_test[:, cols], axis=1).mean()), 1)
        row[f"{name}_blind_mm"] = round(1000 * float(np.linalg.norm(mean[cols] - y_test[:, cols], axis=1).mean()), 1)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["coffee-push-v3", "stick-pull-v3"])
    p.add_argument("--variants", nargs="+", default=["base"], choices=list(VARIANTS))
    p.add_argument("--episodes", type=int, default=10, help="expert episodes for training frames, and for test frames")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--camera", default="corner4", choices=list(CAMERA_POSES),
                   help="corner2-3dp: corner2 moved to (0.6, 0.295, 0.8), the 3D Diffusion Policy paper's camera")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine decay; the trainer's default 1e-3)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="/tmp/vision_probe", help="cache of the collected frames")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    setup_gl()
    for task in args.tasks:
        for variant in args.variants:
            size = VARIANTS[variant][0]
            train = collect(task, args.episodes, 0, size, Path(args.work), args.camera)
            test = collect(task, args.episodes, VAL_SEED, size, Path(args.work), args.camera)
            row = {"task": task, "camera": args.camera, "episodes": args.episodes, **probe(variant, train, test, args.steps, args.seed, args.lr)}
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
