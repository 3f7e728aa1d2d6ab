"""sora_jax: Sora's recipe in JAX/Flax, with compute made measurable."""
