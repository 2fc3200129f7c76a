"""rckd.pretrain."""
