"""Data: PhysWorld, its tfds builder, user folders, video I/O and the Grain pipeline."""
