r"""A plain PyTorch (eager) mirror of `sora_jax/models/dit.py` for `bench_dit_step.py`: the same
layers, shapes, attention layout (full spacetime, or spatial then temporal as Latte) and AdamW
step, in f32 or under bf16 autocast (PyTorch's mixed precision: matmuls and attention in bf16,
parameters and reductions f32). Not part of the package; runs in a separate venv with torch.

    /tmp/refvenv/bin/python benchmarks/torch_dit_block.py WIDTH DEPTH T H W TEXT [BATCH PRECISION LAYOUT]
    # PRECISION f32 | bf16 (autocast), LAYOUT full | factorized; then one line per step on stdin
    # ("step"); prints the step's seconds per line
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


class SelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)

    def forward(self, h, cos, sin):  # h [B, N, D]
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, self.head_dim).unbind(2)
        q, k = apply_rope(self.q_norm(q), cos, sin), apply_rope(self.k_norm(k), cos, sin)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.out(h.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, d, heads, layout="full"):
        super().__init__()
        self.heads, self.head_dim, self.layout = heads, d // heads, layout
        self.attentions = 1 if layout == "full" else 2
        self.modulation = nn.Linear(d, (3 * self.attentions + 3) * d)
        self.attention = nn.ModuleList(SelfAttention(d, heads) for _ in range(self.attentions))
        self.cross_norm = nn.LayerNorm(d)
        self.cq, self.ckv, self.cout = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.cq_norm, self.ck_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.mlp_in, self.mlp_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def split(self, x):
        return x.reshape(*x.shape[:2], self.heads, self.head_dim)

    def forward(self, x, cond, context, context_mask, cos, sin):  # x [B, T, S, D], cond [B, T, D]
        b, t, s, d = x.shape
        mods = self.modulation(F.silu(cond))[:, :, None].chunk(3 * self.attentions + 3, -1)
        if self.layout == "full":
            shift, scale, gate = mods[0:3]
            h = (F.layer_norm(x, (d,)) * (1 + scale) + shift).reshape(b, t * s, d)
            x = x + gate * self.attention[0](h, cos, sin).reshape(b, t, s, d)
        else:  # spatial (a frame's tokens), then temporal (one position across frames); as dit.py
            cos4, sin4 = cos.reshape(t, s, -1), sin.reshape(t, s, -1)
            shift, scale, gate = mods[0:3]
            h = (F.layer_norm(x, (d,)) * (1 + scale) + shift).reshape(b * t, s, d)
            x = x + gate * self.attention[0](h, cos4[0], sin4[0]).reshape(b, t, s, d)
            shift, scale, gate = mods[3:6]
            h = (F.layer_norm(x, (d,)) * (1 + scale) + shift).transpose(1, 2).reshape(b * s, t, d)
            x = x + gate * self.attention[1](h, cos4[:, 0], sin4[:, 0]).reshape(b, s, t, d).transpose(1, 2)
        shift2, scale2, gate2 = mods[-3:]
        h = self.cross_norm(x).reshape(b, t * s, d)
        q = self.cq_norm(self.split(self.cq(h)))
        k, v = self.ckv(context).reshape(b, -1, 2, self.heads, self.head_dim).unbind(2)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), self.ck_norm(k).transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=context_mask[:, None, None, :])
        x = x + self.cout(h.transpose(1, 2).reshape(b, t * s, d)).reshape(b, t, s, d)
        h = F.layer_norm(x, (d,)) * (1 + scale2) + shift2
        return x + gate2 * self.mlp_out(F.gelu(self.mlp_in(h), approximate="tanh"))


class DiT(nn.Module):
    def __init__(self, d, depth, latent_channels=16, patch=(1, 2, 2), text_features=384, layout="full"):
        super().__init__()
        self.patch, self.d = patch, d
        dim = math.prod(patch) * latent_channels
        self.patch_embed, self.final = nn.Linear(dim, d), nn.Linear(d, dim)
        self.time_in, self.time_out = nn.Linear(256, d), nn.Linear(d, d)
        self.text_proj, self.pooled_proj = nn.Linear(text_features, d), nn.Linear(text_features, d)
        self.null = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, d // 64, layout) for _ in range(depth))
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
    batch = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    precision = sys.argv[8] if len(sys.argv) > 8 else "f32"
    layout = sys.argv[9] if len(sys.argv) > 9 else "full"
    if precision not in ("f32", "bf16") or layout not in ("full", "factorized"):
        raise SystemExit(f"precision must be f32 or bf16 and layout full or factorized, got {precision}, {layout}")
    torch.manual_seed(0)
    model = DiT(width, depth, layout=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, t = torch.randn(batch, T, H, W, 16), torch.full((batch, T), 0.5)
    tokens, mask = torch.randn(batch, text, 384), torch.ones(batch, text, dtype=torch.bool)
    pooled = torch.randn(batch, 384)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x, t, tokens, mask, pooled)
        loss = (out.float() - x).pow(2).mean()
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
