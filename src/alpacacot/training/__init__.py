"""LoRA fine-tuning over catalog keys (needs the `[train]` extra)."""
