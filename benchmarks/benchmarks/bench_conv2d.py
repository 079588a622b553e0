"""The 4-D layer: conv2d_forward and conv2d_backward on two layers of a small network."""

import numpy as np

import cconv

LAYERS = {  # name: N, C, H=W, F, filter, stride, padding
    "N=16 C=16 64x64 F=32 3x3 s1 p1": (16, 16, 64, 32, 3, 1, 1),
    "N=8 C=64 28x28 F=64 3x3 s2": (8, 64, 28, 64, 3, 2, 0),
}


class Conv2d:
    params = [list(LAYERS), ["float32", "float64"]]
    param_names = ["layer", "dtype"]

    def setup(self, layer, dtype):
        n, c, hw, f, k, self.stride, self.padding = LAYERS[layer]
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
        self.w = rng.standard_normal((f, c, k, k)).astype(dtype)
        self.b = rng.standard_normal(f).astype(dtype)
        out, self.cache = self.forward()
        self.dout = rng.standard_normal(out.shape).astype(dtype)

    def forward(self):
        return cconv.conv2d_forward(self.x, self.w, self.b, stride=self.stride, padding=self.padding)

    def time_forward(self, layer, dtype):
        self.forward()

    def time_backward(self, layer, dtype):
        cconv.conv2d_backward(self.dout, self.cache)
