"""Plain ``torch.nn`` model code: runs without the training framework."""
