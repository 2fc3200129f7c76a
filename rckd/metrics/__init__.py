"""rckd.metrics."""
