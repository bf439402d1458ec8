"""GPU benchmarks, runnable with `python -m dvd360.benchmarks.<name>` (`--tiny` runs on CPU)."""
