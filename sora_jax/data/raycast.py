"""Ray casting against PhysWorld 3D's solids (`physworld3d.Object3D`): spheres analytically,
cubes and pyramids as convex polyhedra (the slab method over their planes), each after a
bounding-sphere cull. `hit` casts the camera's rays from one origin; `shadowed` casts a ray from
every ground point toward the light.
"""

from __future__ import annotations

import numpy as np

from sora_jax.data import palette


def polyhedron(obj, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Planes (normals [K, 3], offsets [K]) with n.x <= d inside, for a cube or a pyramid."""
    c, s = np.cos(obj.yaw), np.sin(obj.yaw)
    axes = np.array([[c, s, 0.0], [-s, c, 0.0]])
    r = obj.radius
    if palette.SHAPE_NAMES_3D[obj.shape] == "cube":
        normals = np.concatenate([axes, -axes, [[0, 0, 1.0], [0, 0, -1.0]]])
        extents = np.array([r, r, r, r, r, r])
    else:  # pyramid: base at the bottom, apex 1.6 r above it
        apex_height = obj.height
        base = center[2] - apex_height / 2
        slant = np.concatenate([axes, -axes]) * apex_height + np.array([0, 0, r])
        normals = np.concatenate([slant / np.linalg.norm(slant, axis=1, keepdims=True), [[0, 0, -1.0]]])
        apex = np.array([center[0], center[1], base + apex_height])
        offsets = np.concatenate([normals[:4] @ apex, [-base]])
        return normals, offsets
    return normals, normals @ center + extents


def hit(obj, center: np.ndarray, origin: np.ndarray, rays: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray [R] (inf: a miss) and the surface normal [R, 3]."""
    if palette.SHAPE_NAMES_3D[obj.shape] == "sphere":
        offset = origin - center
        b = rays @ offset
        disc = b * b - (offset @ offset - obj.radius**2)
        t = -b - np.sqrt(np.maximum(disc, 0))
        t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
        normal = (origin + np.where(np.isfinite(t), t, 0)[:, None] * rays - center) / obj.radius
        return t, normal
    distance, normal = np.full(len(rays), np.inf), np.zeros((len(rays), 3))
    offset = origin - center  # only the rays through the bounding sphere can hit
    b = rays @ offset
    candidates = np.flatnonzero(b * b - (offset @ offset - obj.bound**2) >= 0)
    normals, offsets = polyhedron(obj, center)
    denom = rays[candidates] @ normals.T  # [R, K]
    num = offsets - normals @ origin  # [K]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / denom
    entering = np.where(denom < 0, t, -np.inf)
    leaving = np.where(denom > 0, t, np.inf)
    parallel_out = (denom == 0) & (num < 0)
    near, far = entering.max(1), leaving.min(1)
    hit = (near <= far) & (near > 1e-6) & ~parallel_out.any(1)
    distance[candidates] = np.where(hit, near, np.inf)
    normal[candidates] = normals[entering.argmax(1)]
    return distance, normal


def shadowed(obj, center: np.ndarray, points: np.ndarray, on_ground: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Whether the ray from each ground point toward the light meets `obj`."""
    result = np.zeros(len(points), bool)
    where = np.flatnonzero(on_ground)
    if where.size == 0:
        return result
    # Cast from each point: shift the object instead of the origin (one origin per ray).
    for start in range(0, where.size, 65536):
        chunk = where[start:start + 65536]
        t, _ = hit_toward(obj, center, points[chunk], light)
        result[chunk] = np.isfinite(t)
    return result


def hit_toward(obj, center: np.ndarray, origins: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, None]:
    """`hit` for rays along `light` from many origins [R, 3]."""
    if palette.SHAPE_NAMES_3D[obj.shape] == "sphere":
        offset = origins - center
        b = offset @ light
        disc = b * b - ((offset * offset).sum(1) - obj.radius**2)
        t = -b + np.sqrt(np.maximum(disc, 0))  # the far side: a ray from the ground starts outside
        return np.where((disc >= 0) & (t > 1e-6), t, np.inf), None
    offset = origins - center  # only the rays through the bounding sphere can hit
    b = offset @ light
    candidates = np.flatnonzero(b * b - ((offset * offset).sum(1) - obj.bound**2) >= 0)
    normals, offsets = polyhedron(obj, center)
    denom = normals @ light  # [K]
    num = offsets[None] - origins[candidates] @ normals.T  # [R, K]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / denom
    near = np.where(denom < 0, t, -np.inf).max(1)
    far = np.where(denom > 0, t, np.inf).min(1)
    distance = np.full(len(origins), np.inf)
    distance[candidates] = np.where((near <= far) & (far > 1e-6), far, np.inf)
    return distance, None
