"""rckd.finetune."""
