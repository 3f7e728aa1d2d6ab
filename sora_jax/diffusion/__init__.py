"""Diffusion: the rectified-flow objective, samplers, and conditioning recipes."""
