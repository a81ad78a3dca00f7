"""Side-by-side measurements (not tests). Results: benchmarks/RESULTS.md."""
