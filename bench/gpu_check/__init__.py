"""One-shot GPU check (issue 13): every CUDA path of svconv exercised and measured by one prepared script.

``PYTHONPATH=. python3 -m bench.gpu_check --out DIR [--budget-s 360] [--device cuda|cpu]`` runs, inside
the budget and in order of value: 1 environment (``env``), 2 the CUDA-marked tests (``runner.run_tests``),
3 correctness on the device against float64 CPU results (``correctness``), 4 speed of eigh against
matmul-only solvers and a CPU round trip on the WRN-16-10 shapes (``speed``), 5 short AMP trials through
``svconv.trial.run_trial`` (``trials``), 6 the summary (``summary``). Needs only torch, numpy, pandas,
pyarrow, pyyaml and tqdm; a missing optional package (pytest, mlxtend, ray, plotly, pyautoattack) is a
``skipped`` line. Each phase runs in its own process (``worker``) so one can be killed at its cap.
"""
