r"""A plain PyTorch (eager, f32) mirror of `sora_jax/models/dit.py` for `bench_dit_step.py`: the
same layers, shapes and AdamW step. Not part of the package; runs in a separate venv with torch.

    /tmp/refvenv/bin/python benchmarks/torch_dit_block.py WIDTH DEPTH T H W TEXT
    # then one line per step on stdin ("step"); prints the step's seconds per line
"""

import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def rope(grid, head_dim, theta=10000.0):
    pairs = head_dim // 2
    split = (pairs - 2 * (pairs // 3), pairs // 3, pairs // 3)
    positions = torch.stack(torch.meshgrid(*[torch.arange(s) for s in grid], indexing="ij")).reshape(3, -1).float()
    angles = []
    for axis, count in enumerate(split):
        frequencies = theta ** (-torch.arange(count).float() / max(count, 1))
        angles.append(positions[axis][:, None] * frequencies[None])
    angles = torch.cat(angles, 1)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):  # x [B, N, H, D]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos[None, :, None], sin[None, :, None]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.scale


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.modulation = nn.Linear(d, 6 * d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.cross_norm = nn.LayerNorm(d)
        self.cq, self.ckv, self.cout = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.cq_norm, self.ck_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.mlp_in, self.mlp_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def split(self, x):
        return x.reshape(*x.shape[:2], self.heads, self.head_dim)

    def forward(self, x, cond, context, context_mask, cos, sin):  # x [B, T, S, D], cond [B, T, D]
        b, t, s, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(cond))[:, :, None].chunk(6, -1)
        h = (F.layer_norm(x, (d,)) * (1 + scale1) + shift1).reshape(b, t * s, d)
        q, k, v = self.qkv(h).reshape(b, t * s, 3, self.heads, self.head_dim).unbind(2)
        q, k = apply_rope(self.q_norm(q), cos, sin), apply_rope(self.k_norm(k), cos, sin)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + gate1 * self.out(h.transpose(1, 2).reshape(b, t * s, d)).reshape(b, t, s, d)
        h = self.cross_norm(x).reshape(b, t * s, d)
        q = self.cq_norm(self.split(self.cq(h)))
        k, v = self.ckv(context).reshape(b, -1, 2, self.heads, self.head_dim).unbind(2)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), self.ck_norm(k).transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=context_mask[:, None, None, :])
        x = x + self.cout(h.transpose(1, 2).reshape(b, t * s, d)).reshape(b, t, s, d)
        h = F.layer_norm(x, (d,)) * (1 + scale2) + shift2
        return x + gate2 * self.mlp_out(F.gelu(self.mlp_in(h), approximate="tanh"))


class DiT(nn.Module):
    def __init__(self, d, depth, latent_channels=16, patch=(1, 2, 2), text_features=384):
        super().__init__()
        self.patch, self.d = patch, d
        dim = math.prod(patch) * latent_channels
        self.patch_embed, self.final = nn.Linear(dim, d), nn.Linear(d, dim)
        self.time_in, self.time_out = nn.Linear(256, d), nn.Linear(d, d)
        self.text_proj, self.pooled_proj = nn.Linear(text_features, d), nn.Linear(text_features, d)
        self.null = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, d // 64) for _ in range(depth))
        self.final_modulation = nn.Linear(d, 2 * d)

    def forward(self, x, t, tokens, mask, pooled):
        b, T, H, W, c = x.shape
        pt, ph, pw = self.patch
        grid = (T // pt, H // ph, W // pw)
        x = x.reshape(b, grid[0], pt, grid[1], ph, grid[2], pw, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
        x = self.patch_embed(x.reshape(b, grid[0], grid[1] * grid[2], -1))
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(128).float() / 128)
        args = 1000.0 * t[..., None] * frequencies
        temb = self.time_out(F.silu(self.time_in(torch.cat([args.cos(), args.sin()], -1))))
        cond = temb + self.pooled_proj(pooled)[:, None]
        context = torch.cat([self.null.expand(b, 1, self.d), self.text_proj(tokens)], 1)
        context_mask = torch.cat([torch.ones(b, 1, dtype=torch.bool), mask], 1)
        cos, sin = rope(grid, self.d // (self.d // 64))
        for block in self.blocks:
            x = block(x, cond, context, context_mask, cos, sin)
        shift, scale = self.final_modulation(F.silu(cond))[:, :, None].chunk(2, -1)
        x = self.final(F.layer_norm(x, (self.d,)) * (1 + scale) + shift)
        x = x.reshape(b, *grid, pt, ph, pw, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
        return x.reshape(b, T, H, W, c)


def main():
    width, depth, T, H, W, text = map(int, sys.argv[1:7])
    torch.manual_seed(0)
    model = DiT(width, depth)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, t = torch.randn(1, T, H, W, 16), torch.full((1, T), 0.5)
    tokens, mask, pooled = torch.randn(1, text, 384), torch.ones(1, text, dtype=torch.bool), torch.randn(1, 384)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = (model(x, t, tokens, mask, pooled) - x).pow(2).mean()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    for line in sys.stdin:
        if line.strip() != "step":
            break
        faults, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        step()
        print(json.dumps({"seconds": time.perf_counter() - started,
                          "minor_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}), flush=True)


if __name__ == "__main__":
    main()
