"""The 3-D layer: conv_forward and conv_backward, by method, dtype and filter size."""

import numpy as np

import cconv


class Conv:
    """Four 256x256 images; a small (3x3) and a large (31x31) filter."""

    params = [["direct", "fft", "auto"], ["float32", "float64"], [3, 31]]
    param_names = ["method", "dtype", "filter"]

    def setup(self, method, dtype, k):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((4, 256, 256)).astype(dtype)
        self.w = rng.standard_normal((k, k)).astype(dtype)
        out, self.cache = cconv.conv_forward(self.x, self.w, method=method)
        self.dout = rng.standard_normal(out.shape).astype(dtype)

    def time_forward(self, method, dtype, k):
        cconv.conv_forward(self.x, self.w, method=method)

    def time_backward(self, method, dtype, k):
        cconv.conv_backward(self.dout, self.cache, method=method)
