"""Speed and memory measurements (``uniwav bench``). Every figure is a ratio against a reference
measured in the same process, so it means something on a shared, noisy machine."""
