"""Hand-written kernels (C++ XLA FFI custom calls), each with a pure-JAX fallback elsewhere."""
