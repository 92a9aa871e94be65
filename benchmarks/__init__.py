"""Side-by-side benchmarks of gpunet against PyTorch: ``python -m benchmarks``."""
