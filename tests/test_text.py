"""Text encoders: the Flax MiniLM port matches sentence-transformers; the byte encoder masks padding."""

import json
import pathlib

import jax
import numpy as np
import pytest

from sora_jax.models import text

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "minilm_reference.json"


def test_minilm_matches_sentence_transformers():
    reference = json.loads(FIXTURE.read_text())  # made by tests/fixtures/make_minilm_reference.py
    encoder = text.MiniLMEncoder()
    out = encoder.encode(reference["sentences"])
    np.testing.assert_allclose(out.pooled, np.array(reference["pooled"]), atol=2e-5)
    first = out.tokens[0][out.mask[0]]
    np.testing.assert_allclose(first, np.array(reference["tokens_0"]), atol=2e-4)
    assert out.mask.sum(1).tolist()[2] == 3  # "cat" -> [CLS] cat [SEP]; padding excluded from pooling
    # Cached and batch-independent: a text alone gives what it gave in a batch.
    alone = encoder.encode([reference["sentences"][2]])
    np.testing.assert_allclose(alone.pooled[0], out.pooled[2], atol=1e-6)


def test_byte_encoder_ignores_padding():
    ids, mask = text.byte_tokenize(["a red circle", "hi"], max_length=24)
    assert ids.shape == (2, 24) and mask[1].sum() == 2
    model = text.ByteEncoder(width=32, depth=1, heads=2, max_length=24)
    params = model.init(jax.random.PRNGKey(0), ids, mask)
    tokens, pooled = model.apply(params, ids, mask)
    assert tokens.shape == (2, 24, 32) and pooled.shape == (2, 32)
    shorter_ids, shorter_mask = text.byte_tokenize(["hi"], max_length=24)
    _, pooled_alone = model.apply(params, shorter_ids, shorter_mask)
    np.testing.assert_allclose(pooled_alone[0], pooled[1], atol=1e-5)


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="valid: bytes, minilm"):
        text.make_frozen_encoder("clip")
