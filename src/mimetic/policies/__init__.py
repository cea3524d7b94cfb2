"""Policies: one module per family (mlp, act, diffusion, flow); shared base in `base`."""

from mimetic.policies.base import POLICY_TYPES, Policy, PolicyActor, PolicyConfig, load_policy, save_policy

__all__ = ["POLICY_TYPES", "Policy", "PolicyActor", "PolicyConfig", "load_policy", "save_policy"]
