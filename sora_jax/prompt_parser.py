"""What a short prompt names, read the way people write: the objects (count, color, shape, size,
motion, trail), the occluders and the camera, plus what it asks for that PhysWorld cannot draw.

    parse("two small squares, one red and one blue, while a cyan ball falls")
    # -> objects: [small red square, small blue square, cyan circle falling], camera: None, ...

The prompt is cut into pieces at punctuation and at conjunctions (`and`, `while`, `as`, `but`,
`then`, ...). A piece about the camera or the walls is read as such; in the others each object
noun (a shape word, or a generic `object` / `one`) starts a noun phrase: the modifiers before it
(count, color, size, participles) and the predicate after it, up to the next noun phrase,
describe it; a piece without a noun continues the last object's predicate (`and bounces`,
`it falls`). Then groups are resolved: a plural or counted phrase followed by `one red and one
blue` takes those as its members, and `three objects:` followed by named objects is filled by
them, not added to. Nothing is invented here: what the prompt leaves open stays None and
`prompts.py` draws it from the training distribution. Requests the world has no control for
(directions, positions, speeds, unknown colors, camera zooms) are listed in `unhonoured`.
"""

from __future__ import annotations

import dataclasses
import re

from sora_jax.data import palette, physworld

COLOR_WORDS = {name: (name,) for name in palette.COLOR_NAMES}
COLOR_WORDS["red"] += ("crimson", "scarlet")
COLOR_WORDS["green"] += ("lime", "emerald")
COLOR_WORDS["blue"] += ("navy", "azure")
COLOR_WORDS["yellow"] += ("gold", "golden", "lemon")
COLOR_WORDS["magenta"] += ("pink", "purple", "violet", "fuchsia")
COLOR_WORDS["cyan"] += ("aqua", "turquoise", "teal")
UNKNOWN_COLORS = ("orange", "white", "black", "brown", "grey", "gray", "silver", "beige", "maroon")
SHAPE_WORDS = {
    "circle": ("circle", "disc", "disk", "ball", "sphere", "orb", "dot", "bubble", "coin"),
    "square": ("square", "box", "block", "cube", "tile", "crate", "brick"),
    "triangle": ("triangle", "pyramid", "wedge"),
}
GENERIC_NOUNS = ("object", "shape", "thing", "item", "figure", "body", "something")
PRONOUN_HEADS = ("one", "other", "another")
SIZE_WORDS = {"small": ("small", "little", "tiny", "mini", "smaller", "smallest"),
              "large": ("large", "big", "huge", "giant", "bigger", "larger", "largest", "biggest")}
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "single": 1, "lone": 1, "two": 2, "both": 2, "pair": 2, "couple": 2,
                "twin": 2, "three": 3, "trio": 3, "four": 4, "five": 5, "six": 6}
VAGUE_PLURALS = ("some", "several", "few", "many", "multiple", "various")

FALL_WORDS = ("fall", "falls", "falling", "fell", "drop", "drops", "dropping", "dropped", "tumble", "tumbles",
              "tumbling", "plummet", "plummets", "plunge", "plunges", "sink", "sinks", "sinking", "descend",
              "descends", "descending", "gravity")
STILL_WORDS = ("still", "static", "stationary", "motionless", "unmoving", "rest", "rests", "resting", "idle",
               "frozen", "parked", "sits", "sitting", "stays", "stay", "remains", "immobile", "fixed")
MOVE_WORDS = ("bounce", "bounces", "bouncing", "bouncy", "rebound", "rebounds", "glide", "glides", "gliding",
              "move", "moves", "moving", "drift", "drifts", "drifting", "travel", "travels", "traveling",
              "travelling", "slide", "slides", "sliding", "roll", "rolls", "rolling", "fly", "flies", "flying",
              "zoom", "zooms", "zooming", "dart", "darts", "darting", "zip", "zips", "zipping", "wander",
              "wanders", "wandering", "roam", "roams", "roaming", "cross", "crosses", "crossing", "race", "races",
              "racing", "speed", "speeds", "speeding", "shoot", "shoots", "rise", "rises", "rising", "float",
              "floats", "floating", "swim", "swims", "run", "runs", "running", "go", "goes", "going", "head",
              "heads", "heading", "jump", "jumps", "jumping", "hop", "hops", "hopping", "skid", "skids",
              "ricochet", "ricochets", "sail", "sails", "swoop", "swoops", "spin", "spins", "spinning", "wobble",
              "wobbles", "scoot", "scoots", "whiz", "whizzes", "hurtle", "hurtles", "careen", "careens", "coast",
              "coasts", "cruise", "cruises", "sweep", "sweeps", "skate", "skates", "orbits", "pass", "passes",
              "passing", "chase", "chases", "chasing", "flee", "flees", "weave", "weaves", "meander", "meanders")
NEGATIONS = ("not", "never", "doesn't", "don't", "isn't", "no", "without", "n't")
PAINT_WORDS = ("trail", "trails", "paint", "paints", "painting", "painted", "path", "paths", "line", "lines",
               "draw", "draws", "drawing", "streak", "streaks", "track", "tracks", "trace", "traces", "tracing",
               "mark", "marks", "ink", "smear", "smears", "stripe")
DIRECTION_WORDS = ("left", "right", "up", "upward", "upwards", "down", "downward", "downwards", "leftward",
                   "leftwards", "rightward", "rightwards", "sideways", "across", "diagonally", "diagonal",
                   "horizontally", "vertically", "toward", "towards", "north", "south", "east", "west",
                   "clockwise", "counterclockwise")
POSITION_PHRASES = (r"\b(on|at|in|near|by)\s+the\s+(left|right|top|bottom|middle|center|centre|corner|edge|side)\b",
                    r"\bin\s+the\s+(top|bottom|upper|lower)\b", r"\bnext to\b", r"\bbeside\b", r"\babove\b",
                    r"\bbelow\b", r"\bunder(neath)?\b(?!\s+gravity)", r"\bon top of\b")
SPEED_WORDS = ("quickly", "fast", "slowly", "slow", "rapidly", "swiftly", "gently", "lazily", "briskly", "quick",
               "speedily", "leisurely")
CAMERA_NOUNS = ("camera", "view", "shot", "frame", "viewpoint", "lens")
CAMERA_PAN_VERBS = ("pan", "pans", "panning", "slides", "slide", "moves", "move", "moving", "tracks", "track",
                    "tracking", "sweeps", "sweep", "glides", "drifts", "turns", "shifts", "scrolls", "scrolling",
                    "travels")
CAMERA_STATIC_WORDS = ("still", "static", "fixed", "locked", "steady", "stationary", "motionless", "stable")
CAMERA_UNSUPPORTED = ("zoom", "zooms", "zooming", "tilt", "tilts", "follow", "follows", "following", "orbit",
                      "orbits", "rotate", "rotates", "rotating", "dolly", "shake", "shakes", "shaky", "handheld",
                      "crane", "spins")
OCCLUDER_WORDS = ("wall", "walls", "pillar", "pillars", "occluder", "occluders", "column", "columns", "post", "posts",
                  "barrier", "barriers", "pole", "poles")
EDGE_PREPOSITIONS = ("off", "against", "into")  # "bounces off the walls": the frame's edges, not occluders
CONJUNCTIONS = ("and", "while", "whilst", "as", "but", "then", "whereas", "meanwhile", "when", "plus", "also",
                "afterwards")
DETERMINERS = ("the", "a", "an", "each", "every", "its", "their", "his", "her", "this", "that", "these", "those")


@dataclasses.dataclass
class ObjectRequest:
    """One object as the prompt names it; None where the prompt says nothing."""

    color: str | None = None
    shape: str | None = None
    size: str | None = None
    motion: str | None = None  # "bounce", "fall", "still", or "moving" (bounce or fall, unsaid which)
    paints: bool | None = None
    words: str = ""  # the prompt's own words for it, for notes


@dataclasses.dataclass
class PromptRequest:
    objects: list[ObjectRequest]
    occluders: int | None = None
    camera: str | None = None  # palette.CAMERA_NAMES, or None
    unhonoured: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Phrase:
    """A noun phrase and its predicate, before groups are resolved."""

    kind: str  # "shape", "generic" or "pronoun"
    count: int | None  # None: a plural without a number
    words: list[str]
    predicate: list[str]
    sentence: int


def _lookup(word: str, table: dict[str, tuple[str, ...]]) -> str | None:
    for name, words in table.items():
        if word in words or (word.endswith("s") and word[:-1] in words) or (word.endswith("es") and word[:-2] in words):
            return name
    return None


def _shape_of(word: str) -> str | None:
    return _lookup(word, SHAPE_WORDS)


def _is_plural_noun(word: str) -> bool:
    return word.endswith("s") and (_shape_of(word[:-1]) is not None or _shape_of(word[:-2] if word.endswith("es")
                                                                                   else "") is not None
                                   or word[:-1] in GENERIC_NOUNS)


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("’", "'").replace("-", " ")
    text = re.sub(r"n't\b", " n't", text)
    return re.findall(r"n't|[a-z]+|\d+|[.,;:!?()]", text)


def _pieces(tokens: list[str]) -> list[tuple[int, list[str]]]:
    """(sentence number, tokens) of each piece: cut at punctuation and conjunctions."""
    pieces, current, sentence = [], [], 0
    for token in tokens:
        if token in ".!?":
            pieces.append((sentence, current))
            current, sentence = [], sentence + 1
        elif token in ",;:()" or token in CONJUNCTIONS:
            pieces.append((sentence, current))
            current = []
        else:
            current.append(token)
    pieces.append((sentence, current))
    return [(s, p) for s, p in pieces if p]


def _is_camera_piece(piece: list[str]) -> bool:
    return any(t in CAMERA_NOUNS for t in piece) or any(t in ("pan", "pans", "panning") for t in piece)


def _occluder_words(piece: list[str]) -> list[int]:
    """Indices of occluder nouns, leaving out the frame's edges (`off the walls`)."""
    return [i for i, t in enumerate(piece) if t in OCCLUDER_WORDS
            and not any(w in EDGE_PREPOSITIONS for w in piece[max(0, i - 2):i])]


def _is_occluder_piece(piece: list[str]) -> bool:
    if "nothing" in piece and ("blocks" in piece or "hides" in piece):
        return True
    has_object = any(_head_kind(piece, i) in ("shape", "generic") for i in range(len(piece)))
    return bool(_occluder_words(piece)) and not has_object


STILL_CAMERA = r"\b(does|do|will)\s+(not|n't)\s+move\b|\bnot moving\b|\bnever moves\b"


def _camera(piece: list[str], request: PromptRequest) -> None:
    text = " ".join(piece)
    unsupported = [t for t in piece if t in CAMERA_UNSUPPORTED]
    if unsupported:
        request.unhonoured.append(f"camera '{unsupported[0]}': the camera only pans left or right, or stays still")
    if any(t in CAMERA_PAN_VERBS or t in ("pan", "panning") for t in piece) and ("left" in piece or "right" in piece):
        request.camera = "pan_left" if "left" in piece else "pan_right"
    elif any(t in CAMERA_STATIC_WORDS for t in piece) or re.search(STILL_CAMERA, text):
        request.camera = "static"
    elif any(t in ("pan", "pans", "panning") for t in piece):
        request.unhonoured.append("camera pan without a direction: drawn left or right")
        request.camera = "pan"
    elif any(t in ("up", "down", "upward", "downward") for t in piece):
        request.unhonoured.append("camera moving up or down: the camera only pans left or right")


def _occluders(piece: list[str], request: PromptRequest) -> None:
    if "no" in piece or ("nothing" in piece and "blocks" in piece) or "without" in piece:
        request.occluders = 0
        return
    counts = [NUMBER_WORDS[t] for t in piece if t in NUMBER_WORDS and t not in ("a", "an")] + \
             [int(t) for t in piece if t.isdigit()]
    plural = any(t in OCCLUDER_WORDS and t.endswith("s") for t in piece)
    count = counts[0] if counts else (2 if plural else 1)
    if count > physworld.MAX_OCCLUDERS:
        request.unhonoured.append(f"{count} occluders: the world has at most {physworld.MAX_OCCLUDERS}")
    request.occluders = (request.occluders or 0) + min(count, physworld.MAX_OCCLUDERS)
    request.occluders = min(request.occluders, physworld.MAX_OCCLUDERS)


def _is_noun(word: str) -> bool:
    return bool(_shape_of(word)) or word in GENERIC_NOUNS or (word.endswith("s") and word[:-1] in GENERIC_NOUNS)


def _head_kind(tokens: list[str], index: int) -> str | None:
    word = tokens[index]
    if _shape_of(word):
        return "shape"
    if word in GENERIC_NOUNS or (word.endswith("s") and word[:-1] in GENERIC_NOUNS):
        return "generic"
    if word in ("one", "ones", "other", "another", "others"):
        after = index + 1
        while after < len(tokens) and _is_modifier(tokens[after]) and not _is_noun(tokens[after]):
            after += 1
        if after < len(tokens) and (_is_noun(tokens[after]) or tokens[after] == "of"):
            return None  # "one red ball", "one of them": a count word, not a pronoun
        before = tokens[index - 1] if index else ""
        if before == "each" or (word in ("other", "others") and before not in ("the", "an", "one")):
            return None  # "each other"
        return "pronoun"
    return None


_MODIFIERS = set(DETERMINERS) | set(NUMBER_WORDS) | set(VAGUE_PLURALS) | {"of", "other", "another", "more"}


def _is_modifier(word: str) -> bool:
    return (word in _MODIFIERS or word.isdigit() or _lookup(word, COLOR_WORDS) is not None or word in UNKNOWN_COLORS
            or _lookup(word, SIZE_WORDS) is not None or word in FALL_WORDS or word in MOVE_WORDS
            or word in ("still", "static", "stationary", "motionless", "resting", "painting") or word in SPEED_WORDS
            or word in ("shiny", "bright", "colored", "coloured", "solid", "round"))


def _phrases(pieces: list[tuple[int, list[str]]]) -> list[_Phrase]:
    phrases: list[_Phrase] = []
    for number, (sentence, piece) in enumerate(pieces):
        heads = [i for i in range(len(piece)) if _head_kind(piece, i)]
        described = any(_lookup(t, COLOR_WORDS) or _lookup(t, SIZE_WORDS) for t in piece)
        if not heads and described and all(_is_modifier(t) for t in piece):
            following = pieces[number + 1][1] if number + 1 < len(pieces) else []
            noun = next((t for i, t in enumerate(following) if _head_kind(following, i) in ("shape", "generic")), None)
            if noun:  # "a red and a blue ball": the noun is shared
                phrases.append(_Phrase("shape" if _shape_of(noun) else "generic", 1, [*piece, noun], [], sentence))
                continue
            if not phrases:  # "red": an object named by its color alone
                phrases.append(_Phrase("generic", 1, piece, [], sentence))
                continue
        if not heads:
            if phrases and piece[0] in ("both", "all", "they", "each"):  # the whole group's predicate
                group = next((p for p in reversed(phrases) if p.kind != "pronoun"), phrases[-1])
                group.predicate += piece
            elif phrases:
                phrases[-1].predicate += piece  # "and bounces", "it falls": the last object's predicate
            continue
        starts = []
        for head in heads:
            start = head
            while start > 0 and _is_modifier(piece[start - 1]) and (not starts or start - 1 > starts[-1][1]):
                start -= 1
            starts.append((start, head))
        if starts[0][0] > 0 and phrases:
            phrases[-1].predicate += piece[:starts[0][0]]  # "it leaves a trail behind a ...": words before
        for number, (start, head) in enumerate(starts):
            end = starts[number + 1][0] if number + 1 < len(starts) else len(piece)
            words = piece[start:head + 1]
            kind = _head_kind(piece, head)
            phrases.append(_Phrase(kind, _count(words, piece[head]), words, piece[head + 1:end], sentence))
    return phrases


def _count(words: list[str], head: str) -> int | None:
    numbers = [int(w) for w in words if w.isdigit()] + [NUMBER_WORDS[w] for w in words if w in NUMBER_WORDS
                                                          and w not in ("a", "an")]
    if head in ("one", "another", "other"):
        return 1
    if numbers:
        return numbers[0]
    plural = head.endswith("s") and (head in ("ones", "others") or _is_plural_noun(head))
    if plural:
        return None
    return 1


def _describe(words: list[str], predicate: list[str], obj: ObjectRequest, request: PromptRequest) -> None:
    """Fills `obj` from its noun phrase's words and its predicate's."""
    for word in words:
        obj.color = obj.color or _lookup(word, COLOR_WORDS)
        obj.size = obj.size or _lookup(word, SIZE_WORDS)
        obj.shape = obj.shape or _shape_of(word)
    unknown = [w for w in (*words, *predicate) if w in UNKNOWN_COLORS]
    predicate_colors = [_lookup(w, COLOR_WORDS) for w in predicate if _lookup(w, COLOR_WORDS)]
    paint_index = next((i for i, w in enumerate(predicate) if w in PAINT_WORDS), None)
    text = " ".join(predicate)
    positions = [m.group(0) for p in POSITION_PHRASES for m in re.finditer(p, text)]
    for phrase in positions:
        text = text.replace(phrase, " ")
    if obj.color is None and predicate_colors:
        obj.color = predicate_colors[0]  # "a ball that is red", "a box leaving a blue trail"
    elif obj.color and predicate_colors and paint_index is not None and predicate_colors[0] != obj.color:
        request.unhonoured.append(f"a {predicate_colors[0]} trail behind a {obj.color} object: trails take their "
                                  f"painter's color")
    if obj.color is None and unknown:
        request.unhonoured.append(f"color '{unknown[0]}': the palette has {', '.join(palette.COLOR_NAMES)}")
    if obj.size is None:
        obj.size = next((_lookup(w, SIZE_WORDS) for w in predicate if _lookup(w, SIZE_WORDS)), None)
    all_words = [*words, *predicate]
    if "still" in all_words:  # "still moving": an adverb, not stillness
        after = all_words[all_words.index("still") + 1:all_words.index("still") + 2]
        if after and after[0] in MOVE_WORDS:
            all_words = [w for w in all_words if w != "still"]
    negated_move = re.search(r"\b(not|never|n't|no longer)\s+(\w+\s+)?(move|moving|moves|bounce|bouncing|budge)\b",
                             text)
    if any(w in FALL_WORDS for w in all_words):
        obj.motion = "fall"  # "falls and bounces on the floor" is a fall
    elif negated_move or any(w in STILL_WORDS for w in all_words):
        obj.motion = "still"
    elif any(w in MOVE_WORDS for w in all_words):
        obj.motion = "bounce"
    if re.search(r"\b(no|without|never|n't|not|nothing)\s+(\w+\s+){0,2}(trail|trails|paint|paints|painting|line|path|"
                 r"mark|marks|streak|leave|leaves|draw|draws|behind)\b", text):
        obj.paints = False
    elif paint_index is not None or any(w in ("painting", "painter") for w in words):
        obj.paints = True
    directions = [w for w in text.split() if w in DIRECTION_WORDS]
    if directions and not (obj.motion == "fall" and set(directions) <= {"down", "downward", "downwards"}):
        request.unhonoured.append(f"direction '{directions[0]}' for '{' '.join(words)}': PhysWorld draws each "
                                  f"object's direction at random")
        if obj.motion is None and obj.paints is not False:
            obj.motion = "moving"  # a direction implies motion
    if positions:
        request.unhonoured.append(f"a position for '{' '.join(words)}': PhysWorld places objects at random")
    speed = [w for w in all_words if w in SPEED_WORDS]
    if speed:
        request.unhonoured.append(f"speed '{speed[0]}' for '{' '.join(words)}': speeds are drawn at random")
    if obj.paints and obj.motion is None:
        obj.motion = "moving"  # painting implies moving
    obj.words = " ".join(words + predicate)


def _resolve(phrases: list[_Phrase], request: PromptRequest) -> list[ObjectRequest]:
    """Groups into objects: members of plural or counted phrases, fillers of `N objects:`."""
    objects: list[ObjectRequest] = []
    index = 0
    while index < len(phrases):
        phrase = phrases[index]
        group = ObjectRequest()
        _describe(phrase.words, phrase.predicate, group, request)
        following = []
        cursor = index + 1
        wanted_kind = "pronoun" if phrase.kind == "shape" else ("shape", "pronoun", "generic")
        while (cursor < len(phrases) and phrases[cursor].sentence == phrase.sentence
               and phrases[cursor].kind in wanted_kind and phrase.count != 1
               and (phrase.kind != "generic" or phrases[cursor].count == 1)):
            following.append(phrases[cursor])
            cursor += 1
        count = phrase.count
        if following:
            members = []
            for member in following:
                obj = dataclasses.replace(group)  # the group's words are every member's defaults
                own = ObjectRequest()
                _describe(member.words, member.predicate, own, request)
                for field in ("color", "shape", "size", "motion", "paints", "words"):
                    if getattr(own, field) not in (None, ""):
                        setattr(obj, field, getattr(own, field))
                members.append(obj)
            total = max(count or len(members), len(members))
            objects += members + [dataclasses.replace(group) for _ in range(total - len(members))]
            index = cursor
            continue
        if phrase.kind == "pronoun" and objects and group.shape is None:
            group.shape = objects[-1].shape  # "a red ball and a blue one"
        if count is None:  # "red balls", "some objects": a plural without a number is two
            objects += [dataclasses.replace(group), dataclasses.replace(group)]
        else:
            objects += [dataclasses.replace(group) for _ in range(count)]
        index += 1
    return objects


def parse(prompt: str, frames: int = 17) -> PromptRequest:
    """What `prompt` names (see the module docstring); `frames` = 1 reads it as an image."""
    request = PromptRequest(objects=[])
    object_pieces = []
    for sentence, piece in _pieces(_tokens(prompt)):
        if _is_occluder_piece(piece):
            _occluders(piece, request)
            continue
        if _is_camera_piece(piece):
            _camera(piece, request)
            if not any(_head_kind(piece, i) in ("shape", "generic") for i in range(len(piece))):
                continue
            piece = [t for t in piece if t not in CAMERA_NOUNS]  # "the camera follows a red ball": the ball
        walls = _occluder_words(piece)
        if walls:  # "a ball behind two walls": the walls, then the ball
            _occluders(piece[max(0, walls[0] - 2):walls[0] + 1], request)
            piece = piece[:max(0, walls[0] - 2)] + piece[walls[0] + 1:]
        object_pieces.append((sentence, piece))
    objects = _resolve(_phrases(object_pieces), request)
    if len(objects) > physworld.MAX_OBJECTS:
        request.unhonoured.append(f"{len(objects)} objects: the world draws at most {physworld.MAX_OBJECTS}")
        objects = objects[:physworld.MAX_OBJECTS]
    if frames == 1:
        for obj in objects:
            if obj.motion not in (None, "still") or obj.paints:
                request.unhonoured.append(f"motion or a trail for '{obj.words}' in a still image")
            obj.motion, obj.paints = "still", False
        if request.camera not in (None, "static"):
            request.unhonoured.append("a camera pan in a still image")
        request.camera = "static"
    for obj in objects:
        if obj.paints and obj.motion == "still":
            request.unhonoured.append(f"a trail behind '{obj.words}', which stays still: only moving objects paint")
            obj.paints = False
    request.objects = objects
    return request
