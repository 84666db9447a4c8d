"""Training on PyTorch Lightning: tasks (LightningModules), checkpoint I/O, logging callbacks."""
