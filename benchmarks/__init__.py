"""pcpeft's benchmarks (run from a checkout: ``pcpeft bench`` or ``python tools/bench.py``): every method's step
time, memory and inference latency, the FPS / kNN kernels, and pcpeft side by side with the reference forward
restated in plain PyTorch (:mod:`.reference`). Results and the machines they were measured on are in
``docs/benchmarks.md``."""
