"""rckd.data.datasets."""
