"""Frozen pretrained text encoders for instruction conditioning (issue 14), loaded from a local folder.

`load_text_encoder(path)` returns a `PretrainedText`: a Hugging Face `transformers` model and its
tokenizer, read from a folder the user already has on disk (a CLIP model or text tower, a
sentence encoder, any model `AutoModel` loads). Nothing is ever downloaded: every load passes
`local_files_only=True` and the hub is switched offline (`HF_HUB_OFFLINE=1`) before `transformers`
is imported; code shipped inside the folder is never run (no `trust_remote_code`).

The model is frozen (eval mode, no gradients) and stays on the CPU: instructions are few and are
embedded once per distinct text by the caller, so the encoder never sits in the training loop.
`embed(texts)` gives an `(n, dim)` float32 array:

- models with `get_text_features` (CLIPModel, SigLIP, ...) and CLIP text towers with a projection
  (`CLIPTextModelWithProjection`): the text tower's projected embedding, CLIP's own sentence vector;
- anything else: the attention-mask-weighted mean of the last hidden state (sentence-transformers'
  mean pooling), so padding never changes a text's vector. Encoder-decoder models use their encoder.

`identity()` is what a policy checkpoint stores about its encoder; `check_identity(stored)` refuses a
folder whose model changed since. The fingerprint hashes `config.json` and, per weight file, its
name, its size and a few evenly spaced 64 KiB samples of its bytes (the whole file when it is under
1 MiB): reading at most 1 MiB per file, cheap for big models, yet it notices retrained weights of
the same architecture, whose files have exactly the same names and sizes.

`transformers` is imported here only when an encoder is loaded (`pip install mimetic[text]`), never
at `import mimetic`.

`load_text_encoder("wordllama")` is the one pretrained encoder that needs no folder: WordLlama
(`pip install wordllama`, MIT), token embeddings distilled from a large language model's and averaged
over the sentence (its 256-d `l2_supercat` model). Its weights and tokenizer ship inside the package,
so it is on every machine that installs it and is loaded from there, downloads disabled. Its identity
is the name "wordllama" and a fingerprint of those two files.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mimetic.errors import MimeticError

INSTALL_HINT = "pip install mimetic[text]"
BATCH_SIZE = 64
# Weight files a transformers folder may hold: single files, shards and their index files.
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model*.bin.index.json")
_SAMPLE_BYTES = 64 * 1024
_SAMPLES = 16
_FULL_HASH_BELOW = 1024 * 1024


def _import_transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise MimeticError(f"a pretrained text encoder needs transformers: {INSTALL_HINT}") from None
    return transformers


def weight_files(folder: Path) -> list[Path]:
    """The model weight files in `folder`, sorted by name (symlinks, as in a hub cache snapshot, count as files)."""
    found = {p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.name)


def _file_digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size < _FULL_HASH_BELOW:
            h.update(f.read())
        else:
            last = size - _SAMPLE_BYTES
            for i in range(_SAMPLES):
                f.seek(last * i // (_SAMPLES - 1))
                h.update(f.read(_SAMPLE_BYTES))
    return h.hexdigest()


def _check_folder(folder: Path) -> list[Path]:
    if not folder.exists():
        raise MimeticError(f"text encoder {folder}: no such folder")
    if not folder.is_dir():
        raise MimeticError(f"text encoder {folder}: not a folder (expected a transformers model folder)")
    if not (folder / "config.json").is_file():
        raise MimeticError(f"text encoder {folder}: not a transformers model folder (no config.json)")
    weights = weight_files(folder)
    if not weights:
        raise MimeticError(f"text encoder {folder}: no model weights (model.safetensors, pytorch_model.bin or shards)")
    return weights


def _files_fingerprint(h, files: list[Path]) -> str:
    for p in files:
        size = p.stat().st_size
        h.update(f"\0{p.name}\0{size}\0{_file_digest(p, size)}".encode())
    return h.hexdigest()


def fingerprint(path: str | os.PathLike) -> str:
    """sha256 over config.json's bytes and each weight file's name, size and sampled bytes (for "wordllama":
    over its packaged weight and tokenizer files)."""
    if str(path) == WORDLLAMA:
        return _files_fingerprint(hashlib.sha256(b"wordllama\0"), _wordllama_files())
    folder = Path(path).expanduser().resolve()
    weights = _check_folder(folder)
    h = hashlib.sha256()
    h.update(b"config.json\0")
    h.update((folder / "config.json").read_bytes())
    return _files_fingerprint(h, weights)


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class FrozenText:
    """What every frozen pretrained text encoder shares: its identity in a checkpoint, and the check of it.
    A subclass sets `path`, `model_type`, `dim` and `_fingerprint`, and implements `embed(texts)`."""

    path: Path | str
    model_type: str
    dim: int
    _fingerprint: str

    @staticmethod
    def _texts(texts) -> list[str]:
        if isinstance(texts, str):
            raise MimeticError("embed takes a list of texts, got one string")
        return [str(t) for t in texts]

    def identity(self) -> dict:
        """JSON-able identity a policy checkpoint stores: path, model_type, dim, fingerprint."""
        return {"path": str(self.path), "model_type": self.model_type, "dim": self.dim,
                "fingerprint": self._fingerprint}

    def check_identity(self, stored: dict) -> None:
        """Raise MimeticError if the model in this encoder's folder no longer matches `stored` (from `identity()`)."""
        want = stored.get("fingerprint")
        if not want:
            raise MimeticError(f"text encoder identity needs a 'fingerprint', got keys {sorted(stored)}")
        now = fingerprint(self.path)
        if now != want:
            raise MimeticError(f"the text encoder at {self.path} changed since the policy was trained "
                               f"(fingerprint {want[:12]}, now {now[:12]})")
        if now != self._fingerprint:
            raise MimeticError(f"the text encoder at {self.path} changed since this process loaded it "
                               f"(fingerprint {self._fingerprint[:12]}, now {now[:12]}); restart to reload it")


class PretrainedText(FrozenText):
    """A frozen pretrained text encoder from a local `transformers` folder (CPU, eval mode, no grad)."""

    def __init__(self, path: str | os.PathLike):
        folder = Path(path).expanduser().resolve()
        _check_folder(folder)
        transformers = _import_transformers()
        import torch

        self.path = folder
        try:
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise MimeticError(f"text encoder {folder}: config.json is not a transformers config ({_one_line(e)})") from None
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise MimeticError(f"text encoder {folder}: no usable tokenizer files ({_one_line(e)})") from None
        # AutoModel maps a CLIP text tower's config to CLIPTextModel, which would drop the projection
        # a CLIPTextModelWithProjection folder holds; load such a folder with the class it names.
        model_class = transformers.AutoModel
        for arch in getattr(config, "architectures", None) or []:
            if arch.endswith("TextModelWithProjection") and hasattr(transformers, arch):
                model_class = getattr(transformers, arch)
                break
        try:
            model = model_class.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise MimeticError(f"text encoder {folder}: could not load the model weights ({_one_line(e)})") from None
        self.model_type = str(config.model_type)
        if hasattr(model, "get_text_features"):
            self.pooling = "text_features"
        elif model_class is not transformers.AutoModel:
            self.pooling = "text_embeds"
        else:
            self.pooling = "mean"
            if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
                model = model.get_encoder()
        model = model.to(device="cpu", dtype=torch.float32).eval()
        model.requires_grad_(False)
        self.model = model
        self._torch = torch
        self.max_length = self._max_length(config)
        self.dim = int(self.embed(["a"]).shape[1])
        self._fingerprint = fingerprint(folder)

    def _max_length(self, config: Any) -> int | None:
        limits = [n for n in (getattr(self.tokenizer, "model_max_length", None),
                              getattr(getattr(config, "text_config", config), "max_position_embeddings", None))
                  if isinstance(n, int) and 0 < n < 1_000_000]
        return min(limits) if limits else None

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed `texts` -> (len(texts), dim) float32, in batches of BATCH_SIZE, under no_grad."""
        texts = self._texts(texts)
        torch = self._torch
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), BATCH_SIZE):
                batch = texts[start:start + BATCH_SIZE]
                enc = self.tokenizer(batch, padding=True, truncation=self.max_length is not None,
                                     max_length=self.max_length, return_tensors="pt")
                out.append(self._forward(dict(enc)).float().cpu().numpy())
        if not out:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def _forward(self, enc: dict):
        torch = self._torch
        if self.pooling == "text_features":
            keys = ("input_ids", "attention_mask", "position_ids")
            feats = self.model.get_text_features(**{k: v for k, v in enc.items() if k in keys})
            # transformers 4.x returns the projected tensor; 5.x an output whose pooler_output is projected.
            return feats if torch.is_tensor(feats) else feats.pooler_output
        if self.pooling == "text_embeds":
            enc.pop("token_type_ids", None)
            return self.model(**enc).text_embeds
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

WORDLLAMA = "wordllama"
_WORDLLAMA_CONFIG, _WORDLLAMA_DIM = "l2_supercat", 256


def _wordllama_files() -> list[Path]:
    """The packaged weight and tokenizer files of WordLlama's l2_supercat model."""
    try:
        import wordllama
    except ImportError:
        raise MimeticError("--text-encoder wordllama needs the wordllama package: pip install wordllama") from None
    root = Path(wordllama.__file__).parent
    files = [root / "weights" / f"{_WORDLLAMA_CONFIG}_{_WORDLLAMA_DIM}.safetensors",
             root / "tokenizers" / f"{_WORDLLAMA_CONFIG}_tokenizer_config.json"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise MimeticError(f"text encoder wordllama: the installed package lacks {', '.join(missing)} "
                           "(reinstall wordllama; it is never downloaded)")
    return files


class WordLlamaText(FrozenText):
    """WordLlama's packaged l2_supercat model: mean-pooled distilled LLM token embeddings, 256-d, L2-normalised."""

    def __init__(self):
        files = _wordllama_files()
        from wordllama import WordLlama

        # cache_dir = the package folder: the tokenizer file it ships is found there, and downloads are disabled
        self.model = WordLlama.load(config=_WORDLLAMA_CONFIG, dim=_WORDLLAMA_DIM, cache_dir=files[1].parent.parent,
                                    disable_download=True)
        self.path, self.model_type, self.dim = WORDLLAMA, f"wordllama-{_WORDLLAMA_CONFIG}", _WORDLLAMA_DIM
        self._fingerprint = fingerprint(WORDLLAMA)

    def embed(self, texts: list[str]) -> np.ndarray:
        texts = self._texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.model.embed(texts, norm=True), dtype=np.float32)


def check_identity(stored: dict) -> None:
    """Raise MimeticError unless the folder at stored["path"] still holds the model fingerprinted in `stored`."""
    path = stored.get("path")
    want = stored.get("fingerprint")
    if not path or not want:
        raise MimeticError(f"text encoder identity needs 'path' and 'fingerprint', got keys {sorted(stored)}")
    try:
        now = fingerprint(path)
    except MimeticError as e:
        raise MimeticError(f"the text encoder the policy was trained with is gone: {e}") from None
    if now != want:
        raise MimeticError(f"the text encoder at {path} changed since the policy was trained "
                           f"(fingerprint {want[:12]}, now {now[:12]})")


_CACHE: dict[Path | str, PretrainedText | WordLlamaText] = {}
_CACHE_LOCK = threading.Lock()


def load_text_encoder(path: str | os.PathLike) -> PretrainedText | WordLlamaText:
    """The encoder at `path` ("wordllama": the packaged WordLlama model), loaded once per process (keyed by the
    resolved folder)."""
    key: Path | str = WORDLLAMA if str(path) == WORDLLAMA else Path(path).expanduser().resolve()
    with _CACHE_LOCK:
        encoder = _CACHE.get(key)
        if encoder is None:
            encoder = _CACHE[key] = WordLlamaText() if key == WORDLLAMA else PretrainedText(key)
        return encoder
