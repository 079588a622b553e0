"""The order of the gallery's examples (conf.py names this class by its path,
so that Sphinx can cache the configuration: a lambda cannot be pickled)."""

ORDER = [
    "plot_find_the_eye.py",
    "plot_cnn_digits.py",
    "plot_template_bank.py",
    "plot_scipy_dropin.py",
    "plot_dask_large_image.py",
    "plot_gradient_check.py",
]


class GalleryOrder:
    """sphinx-gallery's ``within_subsection_order``: the examples in ORDER, then any other by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (ORDER.index(filename), filename) if filename in ORDER else (len(ORDER), filename)

    def __repr__(self):
        return "GalleryOrder"
