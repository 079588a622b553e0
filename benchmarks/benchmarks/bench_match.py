"""Template matching: match_template (ccoeff_normed) and find_matches."""

import numpy as np

import cconv


def scene(dtype, count):
    """A 512x512 image and ``count`` 32x32 templates cut from it, with noise."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (512, 512)).astype(dtype)
    corners = rng.integers(0, 512 - 32, (count, 2))
    templates = np.stack([image[y:y + 32, x:x + 32] for y, x in corners])
    templates += rng.normal(0, 10, templates.shape).astype(dtype)
    return image, templates


class MatchTemplate:
    params = [["float32", "float64"], [1, 4]]
    param_names = ["dtype", "templates"]

    def setup(self, dtype, count):
        self.image, templates = scene(dtype, count)
        self.templates = templates[0] if count == 1 else templates

    def time_match_template(self, dtype, count):
        cconv.match_template(self.image, self.templates)


class FindMatches:
    """The best matches in eight 481x481 score maps."""

    params = [[5, 50], [0, 10]]
    param_names = ["num", "min_distance"]

    def setup(self, num, min_distance):
        image, templates = scene("float32", 8)
        self.scores = cconv.match_template(image, templates)

    def time_find_matches(self, num, min_distance):
        cconv.find_matches(self.scores, num=num, min_distance=min_distance)
