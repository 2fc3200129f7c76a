"""rckd.engine."""
