"""sora_jax: Sora's recipe in JAX/Flax, with compute made measurable."""

from sora_jax import host_memory

host_memory.retain_freed_memory()  # before XLA allocates: see host_memory's docstring
