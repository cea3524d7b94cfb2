"""Adversarial imitation: GAIL (Ho & Ermon 2016) and AIRL (Fu et al. 2018), with a SAC generator
(off-policy, discriminator-actor-critic style, Kostrikov et al. 2019) or a PPO generator (on-policy).
`mimetic.algos.gail` and `mimetic.algos.airl` are the method modules (`mimetic train gail|airl`).

One module per job:
- `discriminator`: the discriminator (GAIL d(s, a); AIRL g(s) + gamma h(s') - h(s)), its training step,
  the generator's reward derived from it, and the learned reward on disk (RUN/reward/).
- `training`: `AdversarialConfig`, the expert transitions, the space checks and the training loop
  (`train_adversarial`; SAC and PPO generators; checkpoint and resume).
- `report`: `reward_report`, the learned reward against the environment's (`mimetic reward RUN`).
"""
