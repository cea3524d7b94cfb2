"""Task conditioning: what tells one multi-task policy which task to do.

A policy whose config has `condition != "none"` owns a `TaskConditioner` that turns the task into a
`task_dim`-wide vector; the policy's `encode` appends it to every observation step, and each head reads it
where it conditions best: FiLM on every hidden layer of the MLP heads, the FiLM condition of the U-Net
(diffusion, flow), an extra token for ACT's transformer; with cameras, also a FiLM of each camera's feature
maps before pooling (`vision_film`, on by default), so the image features themselves depend on the task.

- `task`: the task's instruction, through an instruction encoder. By default (`text_encoder="learned"`)
  one learned from the dataset's own instructions: lower-cased word tokens -> learned embeddings -> mean over
  the words -> an MLP, each output dimension standardized over the training instructions (`standardize`). Its
  vocabulary is the training instructions' words, so it can only embed the
  instructions it was trained on: any other sentence is a one-line error. With `text_encoder=PATH`, a frozen
  pretrained text encoder loaded with `transformers` from that LOCAL folder (`mimetic.policies.text`; nothing
  is downloaded; or `text_encoder="wordllama"`, the sentence encoder the wordllama package ships) embeds the sentence and a learned MLP projects it; the checkpoint keeps the embeddings of
  the training instructions (so evaluating on them needs no model) and the encoder's identity (path,
  fingerprint), and any other wording is embedded by the same model at evaluation time.
- `task-id`: a learned vector per training instruction (a one-hot task ID through a linear layer): the
  baseline that shows what the words add.
- `demo`: one demonstration of the task. `demo_frames` frames spread evenly over the demonstration (its
  vector features, normalized like the policy's, and its actions) go through a per-frame MLP with a learned
  embedding per frame position and are averaged. In training, each sample is given another episode of its
  own task; at evaluation the user gives one (`mimetic eval --demo DATASET`).

Every distinct instruction is embedded once per forward pass (the table of all training instructions), and
a batch looks its rows up in that table; at inference `PolicyActor` embeds its task once per episode batch.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from mimetic.errors import MimeticError

CONDITIONS = ("none", "task", "task-id", "demo")
DEMO_HIDDEN = 128


def words(text: str) -> list[str]:
    """The learned encoder's tokens: lower-cased runs of letters and digits."""
    return re.findall(r"[a-z0-9]+", text.lower())


def check_condition(config) -> None:
    """One-line errors for a conditioning config that cannot work."""
    if config.condition not in CONDITIONS:
        raise MimeticError(f"--condition must be one of {', '.join(CONDITIONS)}, got {config.condition!r}")
    if config.condition == "none":
        return
    if config.task_dim < 1:
        raise MimeticError(f"--task-dim must be >= 1, got {config.task_dim}")
    if config.condition in ("task", "task-id") and not config.instructions:
        raise MimeticError(f"--condition {config.condition} needs task instructions, but the data has none "
                           f"(collect a suite such as metaworld/MT10, or a dataset whose episodes carry task strings)")
    if config.condition == "demo" and config.demo_frames < 1:
        raise MimeticError(f"--demo-frames must be >= 1, got {config.demo_frames}")


def standardize(table: torch.Tensor) -> torch.Tensor:
    """The learned encoder's table (n, dim), each dimension centred and scaled to unit spread over the n training
    instructions (kept as is when n = 1). Instructions that differ in one word ("reach the green / blue / yellow
    target") average to nearly the same vector; what tells them apart, not what they share, is what conditions
    the policy, at the scale of the task-ID vectors (BENCHMARKS.md, "Reading the instruction from pixels")."""
    if len(table) < 2:
        return table
    centred = table - table.mean(0)
    return centred / centred.pow(2).mean(0).add(1e-6).sqrt()


class TaskConditioner(nn.Module):
    """The task -> (B, task_dim). `forward(obs)` reads the batch's `task` (row -> index into the config's
    instructions), `task_vector` (already embedded) or `demo` (normalized demonstration frames (B, K, d + a))."""

    def __init__(self, config):
        super().__init__()
        c = config
        self.kind, self.dim = c.condition, c.task_dim
        self.instructions = list(c.instructions)
        self.pretrained = dict(c.text_identity) if c.condition == "task" and c.text_identity else None
        n, dim = len(self.instructions), c.task_dim
        if c.condition == "task-id":
            self.ids = nn.Embedding(n, dim)
        elif c.condition == "task" and self.pretrained is None:
            self.vocab = sorted({w for s in self.instructions for w in words(s)})
            index = {w: i + 1 for i, w in enumerate(self.vocab)}  # 0 pads
            toks = [[index[w] for w in words(s)] for s in self.instructions]
            width = max(1, max((len(t) for t in toks), default=1))
            self.register_buffer("tokens", torch.tensor([t + [0] * (width - len(t)) for t in toks], dtype=torch.long))
            self.words = nn.Embedding(len(self.vocab) + 1, dim, padding_idx=0)
            self.text_mlp = nn.Sequential(nn.Linear(dim, dim), nn.Mish(), nn.Linear(dim, dim))
        elif c.condition == "task":
            raw = int(self.pretrained["dim"])
            # the frozen encoder's embeddings of the training instructions (filled by `set_instruction_embeddings`)
            self.register_buffer("raw", torch.zeros(n, raw))
            self.text_mlp = nn.Sequential(nn.Linear(raw, dim), nn.Mish(), nn.Linear(dim, dim))
            self._new: dict[str, torch.Tensor] = {}  # other wordings, embedded by the model when first asked for
        elif c.condition == "demo":
            width = c.obs_dim + c.act_dim
            self.frames = c.demo_frames
            self.demo_in = nn.Linear(width, DEMO_HIDDEN)
            self.demo_pos = nn.Parameter(torch.randn(c.demo_frames, DEMO_HIDDEN) * 0.02)
            self.demo_net = nn.Sequential(nn.Mish(), nn.Linear(DEMO_HIDDEN, DEMO_HIDDEN), nn.Mish())
            self.demo_out = nn.Linear(DEMO_HIDDEN, dim)
        else:
            raise MimeticError(f"no task conditioner for condition {c.condition!r}")

    # ------------------------------------------------------------------ instructions
    def set_instruction_embeddings(self) -> None:
        """Embed the training instructions with the pretrained text encoder (once, when training starts)."""
        if self.pretrained is None:
            return
        from mimetic.policies.text import load_text_encoder

        enc = load_text_encoder(self.pretrained["path"])
        enc.check_identity(self.pretrained)
        self.raw.copy_(torch.as_tensor(enc.embed(self.instructions), dtype=torch.float32))

    def table(self) -> torch.Tensor:
        """(n instructions, task_dim): every training instruction embedded (recomputed: the weights change)."""
        if self.kind == "task-id":
            return self.ids.weight
        if self.pretrained is not None:
            return self.text_mlp(self.raw)
        mask = (self.tokens > 0).float()[..., None]
        mean = (self.words(self.tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return standardize(self.text_mlp(mean))

    def index_of(self, instruction: str) -> int | None:
        return self.instructions.index(instruction) if instruction in self.instructions else None

    def embed_instruction(self, instruction: str) -> torch.Tensor:
        """(task_dim,) for one instruction. A training instruction comes from the table; another wording is
        embedded by the pretrained encoder, and is an error for the learned encoder and task IDs."""
        if self.kind not in ("task", "task-id"):
            raise MimeticError(f"this policy is conditioned on {self.kind!r}, not on an instruction")
        i = self.index_of(instruction)
        if i is not None:
            return self.table()[i]
        if self.pretrained is None:
            what = "task IDs" if self.kind == "task-id" else "the learned instruction encoder"
            known = "; ".join(repr(s) for s in self.instructions[:6]) + (" ..." if len(self.instructions) > 6 else "")
            raise MimeticError(f"instruction {instruction!r} was never seen in training, and {what} can only embed "
                               f"the {len(self.instructions)} it was trained on ({known}); train with a pretrained "
                               f"text encoder (--text-encoder PATH) to accept new wording")
        if instruction not in self._new:
            from mimetic.policies.text import load_text_encoder

            enc = load_text_encoder(self.pretrained["path"])
            enc.check_identity(self.pretrained)
            self._new[instruction] = torch.as_tensor(enc.embed([instruction])[0], dtype=torch.float32)
        return self.text_mlp(self.onto_training_span(self._new[instruction].to(self.raw.device)))

    def onto_training_span(self, v: torch.Tensor) -> torch.Tensor:
        """A new wording's embedding, read through what tells the training instructions apart: its projection onto
        the affine span of their embeddings (their mean plus a combination of their differences from it). The
        projection MLP was trained on those points only; the parts of a sentence that no training instruction
        varies along (a different verb, word order) would otherwise move it where the MLP was never trained."""
        mean = self.raw.mean(0)
        diffs = self.raw - mean  # (n, raw): spans the directions the training instructions differ along
        return mean + diffs.T @ (torch.linalg.pinv(diffs.T) @ (v - mean))

    # ------------------------------------------------------------------ demonstrations
    def embed_demo(self, demo: torch.Tensor) -> torch.Tensor:
        """(B, K, d + a) normalized demonstration frames -> (B, task_dim)."""
        if demo.shape[1] != self.frames:
            raise MimeticError(f"a demonstration gives {demo.shape[1]} frames, the policy reads {self.frames}")
        h = self.demo_net(self.demo_in(demo) + self.demo_pos)
        return self.demo_out(h.mean(1))

    def forward(self, obs) -> torch.Tensor:
        if "task_vector" in obs:
            return obs["task_vector"]
        if self.kind == "demo":
            raise MimeticError("a demo-conditioned policy needs the batch's demonstrations ('demo')")
        if "task" not in obs:
            raise MimeticError(f"a {self.kind}-conditioned policy needs each row's task ('task') in its input")
        idx = obs["task"].to(self.table_device(), torch.long)
        return self.table()[idx]

    def table_device(self) -> torch.device:
        return next(self.parameters()).device
