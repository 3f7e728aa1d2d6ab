"""Compute accounting and the compute ladder: FLOPs, budgets into runs, fits, comparisons."""
