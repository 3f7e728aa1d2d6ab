"""sora_jax: Sora's recipe in JAX/Flax, with compute made measurable.

Importing the package changes nothing process-wide: the entry points (`sora-jax`, the test
suite's conftest, the benchmarks) call `host_memory.retain_freed_memory()` themselves.
"""
