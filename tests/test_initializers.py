"""Matrix-drawn initializers give the library initializers' values bit for bit."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from sora_jax.models import initializers


@pytest.mark.parametrize("scale", [1.0, 1e-2])
def test_conv_fan_in_equals_variance_scaling_on_the_kernel_shape(scale):
    shape = (3, 3, 3, 12, 20)
    key = jax.random.PRNGKey(3)
    expected = nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal")(key, shape)
    np.testing.assert_array_equal(initializers.conv_fan_in(scale)(key, shape), expected)


@pytest.mark.parametrize("shape,inputs", [((48, 4, 16), 1), ((4, 16, 48), 2), ((24, 40), 1)])
def test_dense_fan_avg_equals_variance_scaling_with_axis_tuples(shape, inputs):
    key = jax.random.PRNGKey(5)
    expected = nn.initializers.variance_scaling(
        1.0, "fan_avg", "uniform", in_axis=tuple(range(inputs)), out_axis=tuple(range(inputs, len(shape))))(key, shape)
    np.testing.assert_array_equal(initializers.dense(inputs)(key, shape), expected)


def test_matrix_drawn_keeps_shape_and_dtype():
    init = initializers.matrix_drawn(nn.initializers.normal(0.02), inputs=2)
    value = init(jax.random.PRNGKey(0), (2, 3, 5), np.float16)
    assert value.shape == (2, 3, 5) and value.dtype == np.float16
