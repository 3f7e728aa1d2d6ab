"""A folder of broken and awkward user files, for robustness tests and `experiments/fuzz_folder.py`.

    cases = write_bad_folder(folder, seed=0)     # >= 100 files, each with what it tests

Media: truncated MP4/GIF at many cut points, zero bytes under every suffix, wrong extensions
(PNG bytes as .mp4, MP4 bytes as .png, text and random bytes as media), absurd sizes (1 px,
9000 px, a decompression bomb header), one-frame and two-frame videos, grayscale, alpha, 16-bit,
palette and CMYK images, unicode / space / very long names, unreadable permissions, dangling
symlinks, directories named like videos. Captions: missing, empty, whitespace, not UTF-8,
binary, very long, malformed captions.jsonl lines. A few good files make the folder usable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image

from sora_jax.data import physworld, video_io


@dataclasses.dataclass(frozen=True)
class Case:
    name: str  # path relative to the folder
    kind: str  # what it tests


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (wrong) payload."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_bad_folder(folder: str | pathlib.Path, seed: int = 0) -> list[Case]:
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clip = physworld.render_clip(seed, 24, 40, 72).video
    cases: list[Case] = []

    def add(name: str, kind: str, data: bytes | None = None, caption: str | bytes | None = "a clip") -> pathlib.Path:
        path = folder / name
        if data is not None:
            path.write_bytes(data)
        if caption is not None:
            sidecar = path.with_suffix(".txt")
            sidecar.write_bytes(caption if isinstance(caption, bytes) else caption.encode("utf-8"))
        cases.append(Case(name, kind))
        return path

    # Good files, so the folder is usable.
    video_io.write_video(folder / "good.mp4", clip, fps=8)
    add("good.mp4", "good video")
    Image.fromarray(clip[0]).save(folder / "good.png")
    add("good.png", "good image")
    video_io.write_video(folder / "good.gif", clip[:12], fps=8)
    add("good.gif", "good gif")
    mp4, png, gif = ((folder / n).read_bytes() for n in ("good.mp4", "good.png", "good.gif"))

    for fraction in (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99):
        add(f"truncated_{int(fraction * 100):02d}.mp4", "truncated mp4", mp4[: int(len(mp4) * fraction)])
        add(f"truncated_{int(fraction * 100):02d}.gif", "truncated gif", gif[: int(len(gif) * fraction)])
        add(f"truncated_{int(fraction * 100):02d}.png", "truncated png", png[: int(len(png) * fraction)])
    for offset in range(6):  # bytes flipped in the middle of a good file
        corrupted = bytearray(mp4)
        position = len(mp4) // 7 * (offset + 1)
        corrupted[position:position + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        add(f"corrupted_{offset}.mp4", "corrupted mp4 payload", bytes(corrupted))
    for suffix in video_io.VIDEO_SUFFIXES + video_io.IMAGE_SUFFIXES:
        add(f"zero_bytes{suffix}", "zero bytes", b"")
    add("png_bytes.mp4", "wrong extension (png as mp4)", png)
    add("mp4_bytes.png", "wrong extension (mp4 as png)", mp4)
    add("gif_bytes.jpg", "wrong extension (gif as jpg)", gif)
    add("text.mp4", "text as video", b"this is not a video\n" * 20)
    add("text.png", "text as image", b"hello")
    for index in range(6):
        add(f"random_{index}{('.mp4', '.gif', '.png', '.webm', '.mov', '.jpg')[index]}", "random bytes",
            rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    add("no_suffix", "no suffix", png)
    add("notes.xyz", "unsupported suffix", b"?")

    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "one_pixel.png")
    add("one_pixel.png", "1x1 image")
    Image.fromarray(np.zeros((2, 9000, 3), np.uint8)).save(folder / "wide.png")
    add("wide.png", "absurd aspect 2x9000")
    Image.fromarray(np.zeros((5000, 3, 3), np.uint8)).save(folder / "tall.png")
    add("tall.png", "absurd aspect 5000x3")
    add("bomb.png", "decompression-bomb header (60000x60000)", _png_header_claiming(60000, 60000))
    add("liar.png", "header claims 4000x4000, payload tiny", _png_header_claiming(4000, 4000))
    video_io.write_video(folder / "one_frame.mp4", clip[:1], fps=8)
    add("one_frame.mp4", "one-frame video")
    video_io.write_video(folder / "two_frames.mp4", clip[:2], fps=8)
    add("two_frames.mp4", "two-frame video")
    video_io.write_video(folder / "one_frame.gif", clip[:1], fps=8)
    add("one_frame.gif", "one-frame gif")
    video_io.write_video(folder / "tiny.mp4", clip[:9, :4, :4], fps=8)
    add("tiny.mp4", "4x4 video")

    Image.fromarray(clip[0, ..., 0]).save(folder / "gray.png")
    add("gray.png", "grayscale png")
    Image.fromarray(clip[0, ..., 0]).convert("LA").save(folder / "gray_alpha.png")
    add("gray_alpha.png", "grayscale + alpha png")
    Image.fromarray(clip[0]).convert("RGBA").save(folder / "alpha.png")
    add("alpha.png", "rgba png")
    Image.fromarray((clip[0, ..., 0].astype(np.uint16) * 257)).save(folder / "sixteen_bit.png")
    add("sixteen_bit.png", "16-bit grayscale png")
    Image.fromarray(clip[0]).convert("P").save(folder / "palette.png")
    add("palette.png", "palette png")
    Image.fromarray(clip[0]).convert("CMYK").save(folder / "cmyk.jpg")
    add("cmyk.jpg", "cmyk jpeg")
    frames = [Image.fromarray(f).convert("RGBA") for f in clip[:6]]
    frames[0].save(folder / "alpha.gif", save_all=True, append_images=frames[1:], duration=125, loop=0)
    add("alpha.gif", "gif from rgba frames")
    gray_frames = [Image.fromarray(f[..., 0]) for f in clip[:9]]
    gray_frames[0].save(folder / "gray.gif", save_all=True, append_images=gray_frames[1:], duration=125, loop=0)
    add("gray.gif", "grayscale gif")

    for name in ("vidéo ünïcode.mp4", "  leading spaces.mp4", "trailing space .mp4", "名前 付き.png",
                 "emoji 🎬 clip.gif", "semi;colon & amp.mp4", "quote'd \"name\".png", "a" * 200 + ".png",
                 "UPPER.MP4", "dots.in.name.mp4"):
        source = {".mp4": mp4, ".png": png, ".gif": gif}[pathlib.Path(name).suffix.lower()]
        add(name, "awkward name", source)
    sub = folder / "nested" / "deeper"
    sub.mkdir(parents=True)
    add("nested/deeper/clip.mp4", "nested folder", mp4)
    (folder / "dir.mp4").mkdir()
    cases.append(Case("dir.mp4", "directory named like a video"))
    os.symlink(folder / "missing.mp4", folder / "dangling.mp4")
    (folder / "dangling.txt").write_text("a clip")
    cases.append(Case("dangling.mp4", "dangling symlink"))
    os.symlink(folder / "good.mp4", folder / "link.mp4")
    (folder / "link.txt").write_text("a clip")
    cases.append(Case("link.mp4", "symlink to a good file"))
    locked = add("locked.mp4", "unreadable permissions (root still reads)", mp4)
    os.chmod(locked, 0)
    locked_caption = add("locked_caption.png", "unreadable caption", png)
    os.chmod(locked_caption.with_suffix(".txt"), 0)

    add("no_caption.mp4", "missing caption", mp4, caption=None)
    add("empty_caption.mp4", "empty caption", mp4, caption="")
    add("space_caption.png", "whitespace caption", png, caption=" \n\t \n")
    add("latin1_caption.png", "caption not UTF-8", png, caption="caf\xe9 sc\xe8ne".encode("latin-1"))
    add("binary_caption.png", "binary caption", png, caption=rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
    add("long_caption.png", "1 MB caption", png, caption="a red ball " * 100_000)
    add("nul_caption.png", "caption with NUL bytes", png, caption=b"a red\x00ball\x00")
    add("bom_caption.png", "caption with a UTF-8 BOM", png, caption="\ufeffa red ball".encode("utf-8"))
    add("crlf_caption.png", "caption with CRLF lines", png, caption=b"a red ball\r\nbounces\r\n")
    jsonl_entries = [{"file": "jsonl_only.png", "caption": "from jsonl"}, {"file": "jsonl_number.png", "caption": 7},
                     {"file": "jsonl_null.png", "caption": None}, {"file": "jsonl_list.png", "caption": ["a", "b"]},
                     {"caption": "no file key"}, {"file": "jsonl_missing_file.mp4", "caption": "file absent"}]
    for name in ("jsonl_only.png", "jsonl_number.png", "jsonl_null.png", "jsonl_list.png"):
        add(name, "caption from captions.jsonl", png, caption=None)
    lines = [json.dumps(e) for e in jsonl_entries] + ["not json", "[1, 2]", "{\"file\": ", "\x00\x01"]
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return cases
