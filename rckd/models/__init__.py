"""rckd.models."""
