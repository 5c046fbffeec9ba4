"""``svconv bench``: microbenchmarks of computing and controlling singular values; rows to Parquet."""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Time, peak memory, value and gap to the exact value of every method of computing or controlling the "
    "singular values of a conv layer (plain and TT) or of a whole model, over a suite or a grid; one Parquet "
    "row per configuration in RESULTS/bench/. Shipped suites: quick, seed-fig2, wrn16-10, estimators, scaling, "
    "clip-to-target, soc-tt, matrix-norm, zoo (--list describes them)."
)

EPILOG = """examples:
  svconv bench quick
  svconv bench seed-fig2 --repeats 3 --figures out/fig2.html
  svconv bench --grid method=exact,exact-numpy,exact-torch channels=64 input_size=32 stride=1,2
  svconv bench --grid scope=model arch=wrn-16-10 method=clip rank=null,192,256,320 --repeats 1 --warmup 0
  svconv bench estimators --device cuda --address auto      # one Ray task per config, a GPU each
  svconv bench clip-to-target --threads 2                    # time to land within 1% of the target
  svconv bench --grid runner=clip-target method=clip-to-target,division channels=64 input_size=16
  svconv bench soc-tt --figures out/soc_tt.html              # SOC vs SOC-TT inference time over channels
  svconv bench matrix-norm && python -m bench.matrix_norm    # full SVD vs power method, n = 10 ... 5000
  svconv bench zoo --results out                              # the 1-Lipschitz layers: one training step each

grid keys (KEY=V1,V2,... ; AxB for pairs/sizes; null for no TT):
  layer: method channels input_size kernel ndim stride padding rank rank_frac iters k clip_to seed
  model: scope=model arch method rank input_shape num_classes iters check clip_to seed
  both:  device dtype threads repeats warmup
  method=all: every registered method of the grid's scope; svconv bench --list names them (from the
                 method registry, svconv.methods.registry)
  runner=clip-target (bench.clip_target): methods clip-to-target clip-pass division fastclip gram, plus
                 strategy solver guarantee tol max_passes (clip_to_target's; default: every strategy and solver)
                 drift (clip-to-target, clip-pass: the control step after a clip and a random step of that size)
  runner=soc-tt (bench.soc_tt): one SOC layer against SOC-TT ranks (Fig. 6 of Senderovich et al.): channels rank
                 input_size kernel padding batch
  runner=matrix-norm (bench.matrix_norm): an n x n matrix by full SVD (torch, NumPy) or the power method: n method
                 iters
  runner=zoo (bench.zoo): one forward + backward of each 1-Lipschitz layer type (conv soc aol aoc bcop sll cayley
                 bjorck) at equal width: layer channels input_size kernel batch
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("suite", nargs="?", help="a shipped suite name or a path to a suite .yaml file")
    parser.add_argument("--grid", nargs="+", metavar="KEY=VALUES", help="an ad-hoc grid instead of a suite")
    parser.add_argument("--name", default="adhoc", help="suite name recorded in the rows of a --grid run (default: adhoc)")
    parser.add_argument("--list", action="store_true", help="list the shipped suites and exit")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="override the device of every config")
    parser.add_argument("--dtype", choices=("float32", "float64"), help="override the dtype of every config")
    parser.add_argument("--threads", type=int, help="torch CPU threads during each measurement (override; default: torch's)")
    parser.add_argument("--repeats", type=int, help="timed calls per config (override)")
    parser.add_argument("--warmup", type=int, help="untimed calls before them (override)")
    parser.add_argument("--address", help="Ray address ('auto', 'ray://host:10001', or 'local'): one task per config")
    parser.add_argument("--task-cpus", type=float, default=1, help="CPUs reserved per Ray task (default 1)")
    parser.add_argument("--results", default="results", help="results folder (rows go to RESULTS/bench/; default: results)")
    parser.add_argument("--figures", metavar="HTML", help="also write the figures of this run to this HTML file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from bench.grid import parse_grid_args
    from bench.run import run_configs, write_bench_rows
    from bench.suites import list_suites, load_suite, runner_configs
    from bench.summary import format_summary
    from svconv.cli_logging import quiet

    if args.list:
        for name, desc in list_suites().items():
            print(f"{name:12s} {desc}")
        from bench.grid import LAYER_METHODS, MODEL_METHODS

        for scope, methods in (("layer", LAYER_METHODS), ("model", MODEL_METHODS)):
            print(f"\n{scope} methods (what each measures):")
            for name, what in methods.items():
                print(f"  {name:14s} {what}")
        return 0
    if bool(args.suite) == bool(args.grid):
        raise ValueError("give a SUITE or --grid KEY=VALUES ... (exactly one); see svconv bench --help")
    for key in ("repeats", "warmup", "threads"):
        value = getattr(args, key)
        if value is not None and value < (0 if key == "warmup" else 1):
            raise ValueError(f"--{key} must be >= {0 if key == 'warmup' else 1}; got {value}")
    overrides = {
        "device": args.device, "dtype": args.dtype, "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
    }  # fmt: skip
    if args.suite:
        configs = load_suite(args.suite).configs(overrides)
    else:
        grid = parse_grid_args(args.grid)
        configs = runner_configs([grid], args.name, overrides, grid.pop("runner", "grid"))
    rows = run_configs(configs, address=args.address, progress=not args.no_progress and not quiet(), task_cpus=args.task_cpus)
    write_bench_rows(args.results, rows)
    print(format_summary(rows))
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "skipped", "failed")}
    print(f"\n{len(rows)} rows ({counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed) "
          f"written to {args.results}/bench/")  # fmt: skip
    if args.figures:
        from bench.figures import write_figures

        print(f"figures: {write_figures(rows, args.figures)}")
    if counts["failed"]:
        logger.error("some configurations failed; their rows hold the error in 'reason'")
        return 1
    return 0
