"""Ray Tune's overhead per trial: the time a sweep spends around each trial's own work.

Trials are sleep-based Tune function trainables of a fixed duration (reporting once a second, as a
training loop reports its epochs) run one at a time (``max_concurrent_trials=1``) so each gap is
attributable to one trial. Per trial (wall-clock ``time.time()``, one machine, so the clocks agree):

- start overhead: from the moment the driver could start the trial (``tuner.fit()`` for the first trial,
  the completion of the previous trial for the others) to the trial's first step (its trainable running);
- end overhead: from the trial's last report to the driver's ``on_trial_complete`` for it.

The first trial of a sweep is "cold" (Tune's experiment set-up and a new worker process); the others are
"warm" (a reused worker, as ``reuse_workers: true`` in a sweep spec; ``--no-reuse`` starts a process each).

    python -m bench.ray_overhead                        # 5 s and 60 s trials, 3 of each, local Ray
    python -m bench.ray_overhead --quick                # 1 s and 3 s trials, 2 of each
    python -m bench.ray_overhead --durations 5 --trials 5 --address auto
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class TrialTiming:
    """One trial's overheads in seconds (``cold``: the sweep's first trial)."""

    duration_s: float
    index: int
    cold: bool
    start_s: float
    end_s: float


def sleeper(config: dict[str, Any]) -> None:
    """Tune function trainable: ``config['duration_s']`` of sleep in steps of at most 1 s, a report per step.

    Every report carries ``t_first`` (when the trainable began) and the last one ``t_last`` (taken just
    before it is reported).
    """
    from ray import tune

    t_first = time.time()
    duration = float(config["duration_s"])
    step = min(1.0, duration)
    steps = max(1, round(duration / step))
    for i in range(steps):
        time.sleep(step)
        now = time.time()
        tune.report({"step": i, "t_first": t_first, "t_last": now, "done": i == steps - 1})


def measure(duration_s: float, trials: int, reuse: bool = True, storage: str | None = None) -> list[TrialTiming]:
    """Run ``trials`` sleep trials of ``duration_s`` one after another on the connected Ray; their overheads."""
    from ray import tune

    class Clock(tune.Callback):
        def __init__(self) -> None:
            self.completed: dict[str, float] = {}
            self.results: dict[str, dict[str, Any]] = {}

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.results[trial.trial_id] = result

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.completed[trial.trial_id] = time.time()

    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="svconv-ray-overhead-") as tmp:
        tuner = tune.Tuner(
            tune.with_resources(sleeper, {"cpu": 1}),
            param_space={"duration_s": duration_s, "i": tune.grid_search(list(range(trials)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=reuse),
            run_config=tune.RunConfig(storage_path=storage or tmp, name="overhead", callbacks=[clock], verbose=0),
        )
        t_fit = time.time()
        with contextlib.redirect_stdout(sys.stderr):  # Tune's banners; stdout is the table
            grid = tuner.fit()
    if grid.errors:
        raise RuntimeError(f"{len(grid.errors)} sleep trial(s) failed: {grid.errors[0]}")
    done = sorted(clock.completed.items(), key=lambda kv: kv[1])
    out = []
    ready = t_fit
    for index, (trial_id, t_complete) in enumerate(done):
        r = clock.results[trial_id]
        if not r.get("done"):
            raise RuntimeError(f"trial {trial_id} completed without its last report")
        out.append(TrialTiming(duration_s, index, index == 0, r["t_first"] - ready, t_complete - r["t_last"]))
        ready = t_complete
    return out


def format_table(timings: Sequence[TrialTiming]) -> str:
    """Per duration: the cold trial, then median/min/max over the warm ones, in seconds."""
    lines = [f"{'trial':>8}  {'kind':<5}  {'n':>2}  {'start overhead s':>26}  {'end overhead s':>26}"]
    lines.append(f"{'':>8}  {'':<5}  {'':>2}  {'median (min-max)':>26}  {'median (min-max)':>26}")
    for d in sorted({t.duration_s for t in timings}):
        for kind, group in (("cold", [t for t in timings if t.duration_s == d and t.cold]),
                            ("warm", [t for t in timings if t.duration_s == d and not t.cold])):
            if group:
                lines.append(f"{d:>7g}s  {kind:<5}  {len(group):>2}  {_spread([t.start_s for t in group]):>26}  "
                             f"{_spread([t.end_s for t in group]):>26}")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ray_overhead",
        description="Ray Tune's overhead per trial (submission to first step, last report to completion) "
        "for sleep trials of given durations, run one at a time.",
    )
    parser.add_argument("--durations", type=float, nargs="+", default=[5.0, 60.0], metavar="S",
                        help="trial durations in seconds (default: 5 60)")
    parser.add_argument("--trials", type=int, default=3, help="trials per duration (default: 3; the first is cold)")
    parser.add_argument("--quick", action="store_true", help="1 s and 3 s trials, 2 of each (a smoke run)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (auto, HOST:PORT); default: start a local Ray instance")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    parser.add_argument("--no-reuse", action="store_true", help="a new worker process per trial (no actor reuse)")
    args = parser.parse_args(argv)
    if args.quick:
        args.durations, args.trials = [1.0, 3.0], 2
    if args.trials < 1 or any(d <= 0 for d in args.durations):
        parser.error("--trials and --durations must be positive")

    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from tqdm import tqdm

    started = not ray.is_initialized()
    if started:
        if args.address is None:  # "local": a new instance, never one that another process left running
            ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=args.address, log_to_driver=False)
    try:
        timings: list[TrialTiming] = []
        sweeps = []
        for d in tqdm(args.durations, desc="durations", unit="sweep", file=sys.stderr):
            t0 = time.perf_counter()
            timings += measure(d, args.trials, reuse=not args.no_reuse)
            sweeps.append((d, time.perf_counter() - t0 - args.trials * d))
    finally:
        if started:
            ray.shutdown()
    print(f"Ray {ray.__version__}, {args.trials} trials per duration run one at a time, "
          f"worker reuse {'off' if args.no_reuse else 'on'}")
    print(format_table(timings))
    print("whole sweep (Tuner set-up to fit() returned) minus trials x duration: "
          + ", ".join(f"{d:g}s trials: {extra:.1f} s" for d, extra in sweeps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
