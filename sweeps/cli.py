"""`svconv sweep`: run, submit, resume or inspect a Ray Tune sweep of training trials."""

from __future__ import annotations

import argparse
import logging
import json
import sys

from sweeps.jobs import TOKEN_HELP
from svconv.cli_logging import quiet

logger = logging.getLogger(__name__)

DESCRIPTION = """Run a grid of training trials (a spec in sweeps/*.yaml) on Ray Tune, locally or on a cluster.
Each trial writes its Parquet rows under the results folder by trial id (a hash of its config), so
retries and re-runs replace rows instead of duplicating them.

Sweep state is kept under --storage (default $SVCONV_SWEEPS, else <results>/.sweeps with --results,
else ~/svconv_sweeps) in <storage>/<name>/: sweep.json, Ray Tune's experiment (tune/) and, unless
--results says otherwise, results/. On a multi-node cluster both must be on storage that every node
mounts at the same path.

Exit status: 0 all trials ok (or stopped early), 1 some failed, 2 bad spec, options, missing data or a
sweep already running, 130 stopped by SIGINT (Ctrl+C), 143 stopped by SIGTERM (scancel, a pod's
deletion); `resume` continues a stopped sweep."""

STORAGE_HELP = ("storage root of sweep state (default: $SVCONV_SWEEPS, else RESULTS/.sweeps with --results, "
                "else ~/svconv_sweeps; shared by all nodes)")
FIND_RESULTS_HELP = "the --results folder the sweep ran with, to find its state there (RESULTS/.sweeps) without --storage"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="sweep_command", metavar="ACTION")
    sub.required = True

    p = sub.add_parser("run", help="validate a spec and run its trials with Ray Tune",
                       description="Validate SPEC completely, then run every trial with Ray Tune (tune.run).")
    p.add_argument("spec", metavar="SPEC", help="sweep spec (YAML), e.g. sweeps/demo.yaml, or the name of a shipped one (demo, aol, lipconvnet, ...); - reads it from stdin")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join: 'auto' (the cluster this node belongs to) or HOST:PORT of its GCS; "
                        "default: start a local Ray instance")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="results folder (Parquet tables); default <storage>/<name>/results")
    p.add_argument("--storage", default=None, metavar="DIR", help=STORAGE_HELP)
    p.add_argument("--dry-run", action="store_true",
                   help="print the expanded trial list and the sweep's estimated cost, and exit")
    p.add_argument("--timings", action="append", default=None, metavar="DIR",
                   help="with --dry-run: a results folder of bench/epoch_time.py rows to estimate the cost from "
                        "(repeatable; default: bench_results/epoch_time)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--max-trials", type=int, default=None, metavar="N",
                   help="refuse a grid of more than N combinations (default: 100000), counted before expanding it")

    p = sub.add_parser("submit", help="submit a sweep as a Ray Job to a running cluster",
                       description="Validate SPEC here, then submit `svconv sweep run SPEC --address auto` as a "
                                   "Ray Job with this project folder as its working directory.")
    p.add_argument("spec", metavar="SPEC", help="sweep spec (YAML) or a shipped spec's name; one outside the project travels with the job")
    p.add_argument("--address", required=True, help="the cluster's dashboard URL, e.g. http://HEAD:8265")
    p.add_argument("--results", default=None, metavar="DIR", help="results folder on the cluster (shared by all nodes)")
    p.add_argument("--storage", default=None, metavar="DIR", help="storage root on the cluster (default: the cluster's)")
    p.add_argument("--wait", action="store_true", help="follow the job's logs until it ends; exit with its exit status")
    p.add_argument("--token-file", default=None, metavar="FILE", help=TOKEN_HELP)

    p = sub.add_parser("resume", help="continue an interrupted sweep (finished trials are not run again)",
                       description="Resume the sweep NAME's Tune experiment: unfinished trials continue from their last "
                                   "checkpoint, pending ones start, finished ones are left alone.")
    p.add_argument("name", metavar="NAME", help="the sweep's name (the spec's `name`)")
    p.add_argument("--address", default=None, help="Ray cluster to join (see `run`)")
    p.add_argument("--storage", default=None, metavar="DIR", help=STORAGE_HELP)
    p.add_argument("--results", default=None, metavar="DIR", help=FIND_RESULTS_HELP)
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed trials again too (those out of retries and those that failed at once)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("status", help="counts per status and the failures of a sweep",
                       description="Read the sweep's rows: counts of ok, diverged, failed and unfinished trials, "
                                   "and each failure with its error.")
    p.add_argument("name", metavar="NAME", help="the sweep's name")
    p.add_argument("--storage", default=None, metavar="DIR", help=STORAGE_HELP)
    p.add_argument("--results", default=None, metavar="DIR", help=FIND_RESULTS_HELP)
    p.add_argument("--full-errors", action="store_true", help="print whole error tracebacks")
    p.add_argument("--json", action="store_true", help="one JSON object per trial on stdout")
    p.add_argument("--address", default=None, metavar="URL",
                   help="ask the cluster whose dashboard is at URL (runs this command there as a Ray Job); "
                        "default: read the sweep storage from here")
    p.add_argument("--token-file", default=None, metavar="FILE", help=TOKEN_HELP + "; with --address")


def run(args: argparse.Namespace) -> int:
    return {"run": _run, "submit": _submit, "resume": _resume, "status": _status}[args.sweep_command](args)


def _run(args: argparse.Namespace) -> int:
    from sweeps.spec import MAX_TRIALS, load_spec, parse_spec

    limit = MAX_TRIALS if args.max_trials is None else args.max_trials
    spec = parse_spec(sys.stdin.read(), source="<stdin>", max_trials=limit) if args.spec == "-" else load_spec(args.spec, limit)
    from sweeps.failures import check_data
    from sweeps.spec import iter_trial_dicts

    if args.dry_run:
        from sweeps.cost import DEFAULT_TIMINGS, estimate_cost, format_cost, read_measurements

        folders = args.timings or [str(DEFAULT_TIMINGS)]
        print(format_trials(spec))
        print(format_cost(estimate_cost(spec, read_measurements(folders), folders)))
        check_data(spec.name, [t["config"] for t in iter_trial_dicts(spec)])  # what `run` would refuse (exit 2)
        return 0
    from sweeps.driver import run_sweep
    from sweeps.state import SweepState
    from svconv.results import check_writable

    check_data(spec.name, [t["config"] for t in iter_trial_dicts(spec)])  # missing data: exit 2 before any folder is made
    state = SweepState.from_spec(spec, args.results, args.storage)
    check_writable(state.root, "sweep state folder (--storage)")  # before the lock is taken
    check_writable(state.results_dir)  # before any trial trains
    return _driven(lambda: run_sweep(spec, results_dir=args.results, storage=args.storage, address=args.address,
                                     progress=not args.no_progress and not quiet()), state)


def _resume(args: argparse.Namespace) -> int:
    from sweeps.driver import resume_sweep
    from sweeps.state import SweepState
    from svconv.results import check_writable

    state = SweepState.load(args.name, args.storage, args.results)
    check_writable(state.root, "sweep state folder (--storage)")  # before the lock is taken
    check_writable(state.results_dir)  # before any trial trains
    return _driven(lambda: resume_sweep(args.name, storage=args.storage, address=args.address,
                                        retry_failed=args.retry_failed, progress=not args.no_progress and not quiet(),
                                        results_dir=args.results), state)


def _driven(drive, state) -> int:
    """Run ``drive()`` (a run or resume of sweep ``state``) and finish; a signal that arrived outside Tune's
    loop (:class:`sweeps.interrupt.Terminated`, Ctrl+C) still prints how to resume, exit 128 + signal."""
    import signal

    from sweeps.interrupt import Terminated
    from sweeps.state import resume_command

    try:
        outcome = drive()
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        logger.warning("interrupted (%s): continue with `%s`", signal.Signals(signum).name, resume_command(state.name, state.storage))
        return 128 + signum
    return _finish(outcome)


def _finish(outcome) -> int:
    import signal

    from sweeps.state import resume_command
    from sweeps.status import format_status

    print(format_status(outcome.status))
    if outcome.retried:
        logger.warning("%d trial failure(s) (errors or lost nodes) were retried", outcome.retried)
    if outcome.interrupted:
        signum = outcome.signal or signal.SIGINT
        logger.warning("interrupted (%s): continue with `%s`", signal.Signals(signum).name,
                       resume_command(outcome.status.name, outcome.storage))
        return 128 + signum
    from svconv.results import compact_results

    compact_results(outcome.status.results_dir)  # its report then reads a few files, not one per trial and table
    return 0 if outcome.ok else 1


def _submit(args: argparse.Namespace) -> int:
    from sweeps.submit import submit_sweep

    job = submit_sweep(args.spec, args.address, results=args.results, storage=args.storage, wait=args.wait,
                       token_file=args.token_file)
    return job.exit_code if args.wait else 0  # submit_sweep printed the job id on stdout


def _status(args: argparse.Namespace) -> int:
    if args.address:
        from sweeps.submit import remote_status

        flags = tuple(f for f, on in (("--json", args.json), ("--full-errors", args.full_errors)) if on)
        flags += ("--results", args.results) if args.results else ()
        return remote_status(args.name, args.address, args.storage, flags, token_file=args.token_file)
    if args.token_file:
        raise ValueError("--token-file goes with --address (reading the sweep storage needs no token)")
    from sweeps.status import format_status, status_rows, sweep_status

    status = sweep_status(args.name, args.storage, args.results)
    if args.json:
        for row in status_rows(status):
            print(json.dumps(row))
    else:
        print(format_status(status, full_errors=args.full_errors))
    return 0


def format_trials(spec) -> str:
    """The ``--dry-run`` listing: a header, then one line per trial (id and the options the grid sets)."""
    res = spec.resources
    head = (
        f"sweep {spec.name}: {len(spec.trials)} trials; each {res.cpus:g} CPU, {res.gpus:g} GPU; "
        f"concurrency {spec.concurrency or 'as resources allow'}; retries {spec.retries}"
    )
    fixed = ", ".join(f"{k}={v}" for k, v in spec.fixed.items())
    from sweeps.spec import show_value

    cols = spec.grid_options()
    table = [["trial_id", *cols]] + [[t.trial_id, *(show_value(t.varying[c]) if c in t.varying else "-" for c in cols)] for t in spec.trials]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    body = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join([head, f"fixed: {fixed or '(none)'}", *body])
