"""Clipping-speed microbenchmarks: time, peak memory, value and gap of every spectral method (``svconv bench``).

``bench.grid`` (configurations), ``bench.measure`` (one config -> one row), ``bench.timing``,
``bench.baselines`` (NumPy and plain PyTorch exact singular values), ``bench.theory`` (FLOPs, (c/r)^3),
``bench.run`` (local or Ray), ``bench.suites`` (YAML suites), ``bench.summary``, ``bench.figures``.
"""
