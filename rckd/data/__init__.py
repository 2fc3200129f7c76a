"""rckd.data."""
