"""rckd.data.wsi."""
