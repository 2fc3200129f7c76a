"""rckd.models.teachers."""
