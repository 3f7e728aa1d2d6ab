"""The enricher keeps what a prompt names and contradicts nothing, on prompts written for it
(`tests/fixtures/enricher_prompts.txt`: the prompt and the scene it must produce), and says what
it could not honour instead of silently changing it."""

import dataclasses
import pathlib

import pytest

from sora_jax import prompts
from sora_jax.data import palette

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "enricher_prompts.txt"
SEEDS = (0, 1, 2)  # what the prompt leaves open is drawn: named fields must hold for every draw


@dataclasses.dataclass
class Case:
    prompt: str
    objects: list[dict]
    keys: dict
    notes: list[str]
    line: int


def _object(text: str) -> dict:
    expected = {}
    for word in text.split():
        if word in palette.COLOR_NAMES:
            expected["color"] = word
        elif word in palette.SHAPE_NAMES:
            expected["shape"] = word
        elif word in palette.SIZE_NAMES:
            expected["size"] = word
        elif word in (*palette.MOTION_NAMES, "moving"):
            expected["motion"] = word
        elif word in ("paint", "nopaint"):
            expected["paints"] = word == "paint"
        elif word != "?":
            raise ValueError(f"unknown word {word!r} in {text!r}")
    return expected


def cases() -> list[Case]:
    loaded = []
    for number, line in enumerate(FIXTURE.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        prompt, _, expected = line.partition("=>")
        objects_text, *key_texts = expected.split("|")
        keys, notes = {}, []
        for token in " ".join(key_texts).split():
            key, _, value = token.partition("=")
            if key == "note":
                notes.append(value)
            else:
                keys[key] = value
        objects = [_object(o) for o in objects_text.split(";") if o.strip()]
        loaded.append(Case(prompt.strip(), objects, keys, notes, number))
    return loaded


def check(case: Case, seed: int) -> list[str]:
    """What the enrichment of `case` gets wrong (empty: nothing)."""
    frames = int(case.keys.get("frames", 17))
    result = prompts.enrichment(case.prompt, frames=frames, seed=seed)
    problems = []
    count = int(case.keys["n"]) if "n" in case.keys else (len(case.objects) if case.objects else None)
    if count is not None and len(result.objects) != count:
        problems.append(f"{len(result.objects)} objects, expected {count}")
    for index, (expected, got) in enumerate(zip(case.objects, result.objects)):
        for field, value in expected.items():
            if field == "motion" and value == "moving":
                ok = got["motion"] in ("bounce", "fall")
            else:
                ok = got[field] == value
            if not ok:
                problems.append(f"object {index}: {field} {got[field]!r}, expected {value!r}")
    if "occ" in case.keys and result.occluders != int(case.keys["occ"]):
        problems.append(f"{result.occluders} occluders, expected {case.keys['occ']}")
    if "cam" in case.keys and result.camera != case.keys["cam"]:
        problems.append(f"camera {result.camera}, expected {case.keys['cam']}")
    for note in case.notes:
        if not any(note in text for text in result.unhonoured):
            problems.append(f"no unhonoured note about {note!r} (got {result.unhonoured})")
    if not case.notes and result.unhonoured:
        problems.append(f"unexpected unhonoured notes {result.unhonoured}")
    for expected, got in zip(case.objects, result.objects):
        for field in ("color", "shape"):
            if field in expected and expected[field] == got[field]:
                words = (got["color"],) if field == "color" else prompts.captions.SHAPE_WORDS[got["shape"]]
                if not any(word in result.caption for word in words):
                    problems.append(f"caption {result.caption!r} does not name {got[field]}")
    return problems


def test_the_prompt_set_is_large_and_varied():
    loaded = cases()
    assert len(loaded) >= 150
    assert sum(len(c.objects) >= 2 for c in loaded) >= 40
    assert sum(bool(c.notes) for c in loaded) >= 20


@pytest.mark.parametrize("seed", SEEDS)
def test_every_named_attribute_is_kept_and_nothing_named_is_contradicted(seed):
    failures = {}
    for case in cases():
        problems = check(case, seed)
        if problems:
            failures[f"line {case.line}: {case.prompt!r}"] = problems
    assert not failures, "\n".join(f"{k}: {'; '.join(v)}" for k, v in failures.items())


def test_enrichment_is_deterministic_and_fills_blanks_from_the_seed():
    assert prompts.enrich("a red ball", seed=3) == prompts.enrich("a red ball", seed=3)
    drawn = {prompts.enrich("a red ball", seed=seed) for seed in range(8)}
    assert len(drawn) > 1  # size, motion, trail, occluders and camera are drawn per seed
    assert all("red" in caption for caption in drawn)


def test_a_language_model_enricher_plugs_in_through_the_protocol():
    class Echo:
        def __call__(self, prompt: str, *, frames: int, seed: int) -> str:
            return f"{prompt} ({frames} frames, seed {seed})"

    assert prompts.enrich("a red ball", frames=9, seed=1, enricher=Echo()) == "a red ball (9 frames, seed 1)"
