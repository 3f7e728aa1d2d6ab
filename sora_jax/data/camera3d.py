"""The PhysWorld 3D camera: a perspective camera without roll, its intrinsics and extrinsics,
projection, and the shots it takes — orbit, dolly, crane, pan or stay around the scene's centre —
and the pose a cut jumps to.

Conventions: world z is up and the ground is z = 0; pixel (x, y) has its origin at the top-left
and y down; `extrinsics` map world points to camera coordinates (x right, y down, z forward), so
`intrinsics @ extrinsics @ [X, 1]` projects.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FOV_SHORT_DEG = 50.0  # field of view across the short side, every aspect ratio
TARGET = np.array([0.0, 0.0, 0.35])  # where the orbiting camera looks


@dataclasses.dataclass(frozen=True)
class CameraPath:
    """Per frame: position [T, 3], yaw [T] and pitch [T] (radians; yaw 0 looks along +x)."""

    position: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray


def focal(height: int, width: int) -> float:
    """Focal length in pixels (the field of view across the short side is FOV_SHORT_DEG)."""
    return 0.5 * min(height, width) / np.tan(np.radians(FOV_SHORT_DEG) / 2)


def intrinsics(height: int, width: int) -> np.ndarray:
    f = focal(height, width)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float32)


def camera_axes(yaw, pitch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, down, forward) unit vectors in world coordinates, each [..., 3]."""
    yaw, pitch = np.asarray(yaw, np.float64), np.asarray(pitch, np.float64)
    forward = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], -1)
    right = np.stack([np.sin(yaw), -np.cos(yaw), np.zeros_like(yaw)], -1)
    down = np.cross(forward, right)  # forward x right points down for a camera without roll
    return right, down, forward


def extrinsics(path: CameraPath) -> np.ndarray:
    """float32 [T, 3, 4]: world -> camera (x right, y down, z forward)."""
    right, down, forward = camera_axes(path.yaw, path.pitch)
    rotation = np.stack([right, down, forward], -2)  # [T, 3, 3]
    translation = -np.einsum("tij,tj->ti", rotation, path.position)
    return np.concatenate([rotation, translation[..., None]], -1).astype(np.float32)


def project(points: np.ndarray, path: CameraPath, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """World points [T, N, 3] -> pixel (x, y) [T, N, 2] and camera depth [T, N]."""
    ext = extrinsics(path).astype(np.float64)
    cam = np.einsum("tij,tnj->tni", ext[..., :3], points) + ext[:, None, :, 3]
    f = focal(height, width)
    depth = cam[..., 2]
    safe = np.where(depth > 1e-6, depth, np.nan)
    xy = np.stack([f * cam[..., 0] / safe + width / 2, f * cam[..., 1] / safe + height / 2], -1)
    return xy.astype(np.float32), depth.astype(np.float32)


def look_at(position: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    direction = target - position
    yaw = np.arctan2(direction[..., 1], direction[..., 0])
    pitch = np.arctan2(direction[..., 2], np.hypot(direction[..., 0], direction[..., 1]))
    return yaw, pitch


def orbit_position(azimuth, elevation, distance) -> np.ndarray:
    azimuth, elevation, distance = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (azimuth, elevation,
                                                                                              distance)))
    offset = np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                       np.sin(elevation)], -1)
    return TARGET + distance[..., None] * offset


def orbit_pose(position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`orbit_position` inverted: (azimuth, elevation, distance) of positions [..., 3] about TARGET."""
    offset = np.asarray(position, np.float64) - TARGET
    distance = np.linalg.norm(offset, axis=-1)
    return np.arctan2(offset[..., 1], offset[..., 0]), np.arcsin(offset[..., 2] / distance), distance


def shot_path(rng: np.random.Generator, move: str, frames: int, azimuth: float, elevation: float,
              distance: float) -> CameraPath:
    """A shot's camera path: `move` over `frames` frames from an orbit pose."""
    steps = np.arange(frames, dtype=np.float64)
    az, el, dist = np.full(frames, azimuth), np.full(frames, elevation), np.full(frames, distance)
    if move in ("orbit_left", "orbit_right"):  # orbit_right: the camera travels to its right
        az = azimuth + (1 if move == "orbit_right" else -1) * np.radians(rng.uniform(3.0, 5.0)) * steps
    elif move in ("dolly_in", "dolly_out"):
        rate = rng.uniform(0.02, 0.03)
        dist = distance * np.exp((-1 if move == "dolly_in" else 1) * rate * np.minimum(steps, 24))
    elif move in ("crane_up", "crane_down"):
        rate = np.radians(rng.uniform(2.0, 3.0)) * (1 if move == "crane_up" else -1)
        el = np.clip(elevation + rate * steps, np.radians(8), np.radians(75))
    position = orbit_position(az, el, dist)
    yaw, pitch = look_at(position, TARGET)
    if move in ("pan_left", "pan_right"):  # the camera stays and turns; pan_left turns to its left
        position = np.repeat(position[:1], frames, 0)
        yaw = yaw[0] + (1 if move == "pan_left" else -1) * np.radians(rng.uniform(2.0, 3.0)) * steps
        pitch = np.full(frames, pitch[0])
    return CameraPath(position, np.asarray(yaw, np.float64), np.asarray(pitch, np.float64))


def cut_pose(cut: str, azimuth: float, elevation: float, distance: float) -> tuple[float, float, float]:
    return {"above": (azimuth, np.radians(72), distance), "other_side": (azimuth + np.pi, elevation, distance),
            "closer": (azimuth, elevation, distance * 0.68), "farther": (azimuth, elevation, distance * 1.35)}[cut]
