"""Frozen pretrained text encoders (mimetic.policies.text) on tiny randomly initialised models built here.

Nothing is downloaded: each test writes its own vocabulary, builds a tiny BERT (mean pooling) or CLIP
text tower (projected embedding) with random weights and saves it into tmp_path.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from mimetic.errors import MimeticError  # noqa: E402
from mimetic.policies import text as text_mod  # noqa: E402
from mimetic.policies.text import PretrainedText, check_identity, load_text_encoder  # noqa: E402

WORDS = "open close the drawer door window push pull press button pick place put a red blue green block on top of".split()


def _bert_folder(path, seed=0):
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list("abcdefghijklmnopqrstuvwxyz")
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizer.from_pretrained(path)  # reads vocab.txt (transformers 4 and 5)
    assert tokenizer.unk_token_id not in tokenizer("open the drawer")["input_ids"]
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _clip_folder(path, seed=0):
    """A CLIPTextModelWithProjection with a byte-level BPE vocabulary written here (bytes, bytes</w>, a few merges)."""
    path.mkdir(parents=True, exist_ok=True)
    # GPT-2 / CLIP byte-level alphabet: printable bytes stand for themselves, the rest map to chr(256 + k)
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [chr(b) for b in printable] + [chr(256 + k) for k in range(256 - len(printable))]
    merges = ["o p", "op e", "ope n</w>", "t h", "th e</w>", "d r", "dr a", "dra w", "draw e", "drawe r</w>"]
    vocab = chars + [c + "</w>" for c in chars]
    for merge in merges:
        vocab.append(merge.replace(" ", ""))
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (path / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(path)  # reads vocab.json + merges.txt
    ids = tokenizer("open the drawer")["input_ids"]
    assert ids[1:-1] == [vocab.index("open</w>"), vocab.index("the</w>"), vocab.index("drawer</w>")]
    torch.manual_seed(seed)
    config = transformers.CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, projection_dim=16,
                                         max_position_embeddings=32,
                                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                         pad_token_id=tokenizer.pad_token_id)
    transformers.CLIPTextModelWithProjection(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return _bert_folder(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def bert(bert_dir):
    return PretrainedText(bert_dir)


def test_mean_pooled_embeddings(bert):
    assert bert.dim == 32 and bert.pooling == "mean"
    texts = ["open the drawer", "close the window", "push the red button"]
    e = bert.embed(texts)
    assert e.shape == (3, 32) and e.dtype == np.float32 and np.isfinite(e).all()
    np.testing.assert_array_equal(e, bert.embed(texts))  # deterministic: eval mode, no dropout
    assert np.abs(e[0] - e[1]).max() > 1e-3 and np.abs(e[0] - e[2]).max() > 1e-3
    assert bert.embed([]).shape == (0, 32)
    assert not any(p.requires_grad for p in bert.model.parameters()) and not bert.model.training
    assert all(p.device.type == "cpu" for p in bert.model.parameters())


def test_padding_is_ignored(bert):
    short = "open the drawer"
    alone = bert.embed([short])[0]
    batched = bert.embed(["pick the blue block and place it on top of the green block", short])[1]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_batches_larger_than_one_forward(bert, monkeypatch):
    texts = [f"press the button {c}" for c in "abcdefg"]
    whole = bert.embed(texts)
    monkeypatch.setattr(text_mod, "BATCH_SIZE", 3)
    np.testing.assert_allclose(bert.embed(texts), whole, atol=1e-5)


def test_identity_and_fingerprint(bert, bert_dir):
    ident = bert.identity()
    assert json.loads(json.dumps(ident)) == ident
    assert ident["path"] == str(bert_dir.resolve()) and ident["model_type"] == "bert" and ident["dim"] == 32
    assert len(ident["fingerprint"]) == 64
    again = PretrainedText(bert_dir)  # a second load, not the cache
    assert again.identity() == ident
    bert.check_identity(ident)
    check_identity(ident)


def test_fingerprint_changes_with_the_weights(tmp_path):
    folder = _bert_folder(tmp_path / "m", seed=0)
    ident = PretrainedText(folder).identity()
    # retrained weights of the same architecture: same file names and sizes, different bytes
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    torch.manual_seed(1)
    transformers.BertModel(transformers.BertConfig.from_pretrained(folder)).save_pretrained(folder)
    assert weights.stat().st_size == size
    with pytest.raises(MimeticError, match="changed since the policy was trained") as err:
        check_identity(ident)
    assert "\n" not in str(err.value) and str(folder.resolve()) in str(err.value)
    assert PretrainedText(folder).identity()["fingerprint"] != ident["fingerprint"]


def test_fingerprint_samples_big_files(tmp_path):
    folder = _bert_folder(tmp_path / "m")
    big = folder / "model-00002-of-00002.safetensors"
    data = bytearray(3 * 1024 * 1024 + 17)
    big.write_bytes(bytes(data))
    before = text_mod.fingerprint(folder)
    assert text_mod.fingerprint(folder) == before
    data[-5] = 1  # the last sample covers the end of the file
    big.write_bytes(bytes(data))
    assert text_mod.fingerprint(folder) != before


def test_missing_or_broken_folders(tmp_path):
    with pytest.raises(MimeticError, match="no such folder") as err:
        PretrainedText(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MimeticError, match="no config.json"):
        load_text_encoder(tmp_path / "empty")
    folder = _bert_folder(tmp_path / "noweights")
    (folder / "model.safetensors").unlink()
    with pytest.raises(MimeticError, match="no model weights"):
        PretrainedText(folder)
    with pytest.raises(MimeticError, match="gone"):
        check_identity({"path": str(tmp_path / "nowhere"), "fingerprint": "0" * 64})


def test_cache_loads_a_path_once(bert_dir):
    a = load_text_encoder(bert_dir)
    assert load_text_encoder(str(bert_dir)) is a
    assert load_text_encoder(bert_dir / ".." / bert_dir.name) is a


def test_clip_text_tower_uses_the_projection(tmp_path):
    enc = PretrainedText(_clip_folder(tmp_path / "clip"))
    assert enc.pooling == "text_embeds" and enc.dim == 16 and enc.identity()["model_type"] == "clip_text_model"
    texts = ["open the drawer", "close the door", "open the drawer"]
    e = enc.embed(texts)
    assert e.shape == (3, 16) and e.dtype == np.float32
    np.testing.assert_array_equal(e[0], e[2])
    assert np.abs(e[0] - e[1]).max() > 1e-3
    with torch.no_grad():
        ids = enc.tokenizer(["open the drawer"], return_tensors="pt")
        want = enc.model(**ids).text_embeds[0].numpy()
    np.testing.assert_allclose(e[0], want, atol=1e-5)
    alone = enc.embed(["open the drawer"])[0]
    batched = enc.embed(["pick the blue block and place it on top of the green one", "open the drawer"])[1]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_clip_model_uses_get_text_features(tmp_path):
    tower = _clip_folder(tmp_path / "tower")
    text_config = transformers.CLIPTextConfig.from_pretrained(tower)
    vision = transformers.CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                           num_attention_heads=2, image_size=8, patch_size=4)
    config = transformers.CLIPConfig(text_config=text_config.to_dict(), vision_config=vision.to_dict(),
                                     projection_dim=16)
    folder = tmp_path / "clip"
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(folder)
    transformers.CLIPTokenizer.from_pretrained(tower).save_pretrained(folder)
    enc = PretrainedText(folder)
    assert enc.pooling == "text_features" and enc.dim == 16 and enc.identity()["model_type"] == "clip"
    e = enc.embed(["open the drawer", "close the door"])
    assert e.shape == (2, 16) and np.abs(e[0] - e[1]).max() > 1e-3


def test_import_mimetic_does_not_import_transformers():
    code = ("import sys, mimetic, mimetic.policies, mimetic.policies.text, mimetic.cli; "
            "print(sorted(m for m in ('transformers', 'tokenizers', 'huggingface_hub') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_transformers_is_one_line(bert_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now raises ImportError
    with pytest.raises(MimeticError, match=r"pip install mimetic\[text\]") as err:
        PretrainedText(bert_dir)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- wordllama: the pretrained encoder a package ships
def _no_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_wordllama_loads_from_its_package_and_embeds_by_meaning(monkeypatch):
    pytest.importorskip("wordllama")
    _no_network(monkeypatch)  # its files ship inside the package: loading never downloads
    monkeypatch.setattr(text_mod, "_CACHE", {})
    enc = load_text_encoder("wordllama")
    assert load_text_encoder("wordllama") is enc
    ident = enc.identity()
    assert ident["path"] == "wordllama" and ident["dim"] == 256 and len(ident["fingerprint"]) == 64
    enc.check_identity(ident)
    check_identity(ident)
    with pytest.raises(MimeticError, match="changed"):
        check_identity({**ident, "fingerprint": "0" * 64})
    e = enc.embed(["open the drawer", "pull the drawer open", "press the button from the top", "close the window"])
    assert e.shape == (4, 256) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    # a pretrained model: a paraphrase is nearer its sentence than other tasks' sentences are (a random table is not)
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3]) + 0.2


def test_wordllama_missing_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "wordllama", None)
    monkeypatch.setattr(text_mod, "_CACHE", {})
    with pytest.raises(MimeticError, match="pip install wordllama") as err:
        load_text_encoder("wordllama")
    assert "\n" not in str(err.value)
