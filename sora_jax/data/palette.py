"""The PhysWorld palette: colors every renderer draws with and every detector reads.

Colors are RGB in [0, 1]. Objects use six saturated colors; a painting object's trail uses a
dimmer shade of the same color; occluders are mid-gray; the background is a near-black texture.
"""

import numpy as np

COLOR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")
OBJECT_COLORS = np.array(
    [
        [1.0, 0.1, 0.1],
        [0.1, 0.9, 0.1],
        [0.15, 0.3, 1.0],
        [1.0, 0.9, 0.1],
        [1.0, 0.1, 1.0],
        [0.1, 0.95, 1.0],
    ],
    dtype=np.float32,
)
TRAIL_SHADE = 0.45  # a trail is this fraction of its painter's color
TRAIL_COLORS = OBJECT_COLORS * TRAIL_SHADE
OCCLUDER_GRAY = 0.5
OCCLUDER_COLOR = np.full(3, OCCLUDER_GRAY, dtype=np.float32)
BACKGROUND_RANGE = (0.02, 0.12)  # the background texture's intensity range

SHAPE_NAMES = ("circle", "square", "triangle")
SIZE_NAMES = ("small", "large")
# "rise" (gravity reversed: floats up and bounces on the ceiling) is never drawn by the default
# world (`WorldConfig.motion_probs` has three entries): a concept a base model has not seen, for
# fine-tuning experiments (experiments/lora_holdout.py --concept=rise).
MOTION_NAMES = ("bounce", "fall", "still", "rise")
CAMERA_NAMES = ("static", "pan_left", "pan_right")


def nearest_palette_index(pixels: np.ndarray) -> np.ndarray:
    """Labels each RGB pixel [..., 3] in [0, 1] by its nearest palette entry.

    Returns ints [...]: 0..5 an object color, 6..11 the trail shade of that color, 12 occluder
    gray, 13 background.
    """
    references = np.concatenate(
        [OBJECT_COLORS, TRAIL_COLORS, OCCLUDER_COLOR[None], np.full((1, 3), 0.07, np.float32)]
    )
    distances = ((pixels[..., None, :] - references) ** 2).sum(-1)
    return distances.argmin(-1)

# PhysWorld 3D's vocabulary (`data/physworld3d.py`): its shapes, motions, camera moves, and the
# second views a clip may cut to.
SHAPE_NAMES_3D = ("sphere", "cube", "pyramid")
MOTION_NAMES_3D = ("still", "roll", "bounce")
CAMERA_MOVES_3D = ("static", "orbit_left", "orbit_right", "dolly_in", "dolly_out", "crane_up", "crane_down",
                   "pan_left", "pan_right")
CUT_NAMES_3D = ("above", "other_side", "closer", "farther")
