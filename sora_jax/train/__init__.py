"""Training: mesh and sharding, state, Orbax checkpoints, metrics, and the one trainer."""
