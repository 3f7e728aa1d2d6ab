"""Models: one model per file (vae.py, dit.py, text.py) over shared layers."""
