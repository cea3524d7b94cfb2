"""The `imitation` library's GAIL / AIRL (PPO generator, Stable-Baselines3) on demonstrations exported by
benchmarks/adversarial.py. Runs in its own virtual environment (imitation pins gymnasium 0.29):

    python3 -m venv /tmp/imitation-venv
    /tmp/imitation-venv/bin/pip install torch==2.13.0 imitation
    PYTHONPATH=src /tmp/imitation-venv/bin/python benchmarks/imitation_baseline.py \
        --npz DEMOS.npz --env reach --algo gail --steps 100000 --eval-every 10000 --json OUT.json

`--env reach` imports mimetic's numpy-only reach environment (PYTHONPATH=src); `--env Pendulum-v1` is
gymnasium's. Evaluation: deterministic policy, episodes on seeds 2_000_000.. (validation seeds, the
curve) and a final evaluation on 1_000_000.. (the same test seeds mimetic uses). Settings follow
imitation's documented GAIL/AIRL examples (PPO MlpPolicy 64x64, n_steps 1024 x 8 envs, BasicRewardNet /
BasicShapedRewardNet with RunningNorm, demo_batch_size 1024, gen_replay_buffer_capacity 512,
n_disc_updates_per_round 8).
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

torch.set_num_threads(1)


def make_env(name: str):
    if name == "reach":
        from mimetic.envs.reach import ReachEnv

        return ReachEnv()
    return gym.make(name)


def load_trajectories(path: str):
    from imitation.data.types import Trajectory

    z = np.load(path)
    trajs = []
    for i in range(len(z["lengths"])):
        s, t = int(z["starts"][i]), int(z["lengths"][i])
        obs = np.concatenate([z["obs"][s : s + t], z["final_obs"][i : i + 1]])
        trajs.append(Trajectory(obs=obs, acts=z["acts"][s : s + t], infos=None, terminal=bool(z["terminated"][i])))
    return trajs


def evaluate(policy, env_name: str, episodes: int, seed: int) -> float:
    env = make_env(env_name)
    rets = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        done, ret = False, 0.0
        while not done:
            act, _ = policy.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(act)
            ret += r
            done = term or trunc
        rets.append(ret)
    return float(np.mean(rets))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--npz", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--algo", choices=["gail", "airl"], default="gail")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--eval-every", type=int, default=16384)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--final-episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", required=True)
    a = p.parse_args()

    from imitation.algorithms.adversarial.airl import AIRL
    from imitation.algorithms.adversarial.gail import GAIL
    from imitation.data.wrappers import RolloutInfoWrapper
    from imitation.rewards.reward_nets import BasicRewardNet, BasicShapedRewardNet
    from imitation.util.networks import RunningNorm
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: RolloutInfoWrapper(make_env(a.env)) for _ in range(8)])
    venv.seed(3_000_000 + a.seed)
    learner = PPO("MlpPolicy", venv, batch_size=64, ent_coef=0.0, learning_rate=3e-4, gamma=0.99, n_epochs=10,
                  n_steps=1024, seed=a.seed, policy_kwargs={"net_arch": [64, 64]})
    if a.algo == "gail":
        net = BasicRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm)
        cls = GAIL
    else:
        net = BasicShapedRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm)
        cls = AIRL
    trajs = load_trajectories(a.npz)
    n_demo = sum(len(t.acts) for t in trajs)
    trainer = cls(demonstrations=trajs, demo_batch_size=min(1024, n_demo), gen_replay_buffer_capacity=512,
                  n_disc_updates_per_round=8, venv=venv, gen_algo=learner, reward_net=net, allow_variable_horizon=True)
    curve, t0, done = [], time.perf_counter(), 0
    while done < a.steps:
        chunk = max(min(a.eval_every, a.steps - done), 8 * 1024)  # imitation trains whole rounds (n_envs * n_steps)
        trainer.train(chunk)
        done = learner.num_timesteps
        curve.append({"env_steps": int(done), "time_s": round(time.perf_counter() - t0, 2),
                      "val_return": evaluate(learner, a.env, a.eval_episodes, 2_000_000)})
        print(json.dumps(curve[-1]), flush=True)
    final = evaluate(learner, a.env, a.final_episodes, 1_000_000)
    with open(a.json, "w") as f:
        json.dump({"library": "imitation", "algo": a.algo, "env": a.env, "curve": curve, "final_return": final,
                   "env_steps": int(done), "seconds": round(time.perf_counter() - t0, 2)}, f, indent=1)


if __name__ == "__main__":
    main()
