"""``svconv`` entry point. Subcommands: train, bench, sweep, report.

Each subcommand lives in its owner package as a module with ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the subcommand on the command line is imported (``svconv
--help`` imports none), and those modules import heavy libraries (torch, ray) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from svconv.cli_logging import configure_logging, split_verbosity, verbosity_options

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("svconv.train_cli", "train one model (one trial) and write its Parquet rows"),
    "bench": ("bench.cli", "microbenchmark the speed and accuracy of spectral methods"),
    "sweep": ("sweeps.cli", "run, submit, resume or inspect a Ray Tune sweep"),
    "report": ("analysis.cli", "write the HTML comparison report of a results folder"),
}


class CLIError(Exception):
    """A user error: printed on stderr without a traceback, exit code 2."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``svconv``; of the subcommands only ``command``'s module is imported and its options
    added (None: every subcommand's, for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="svconv",
        description="Compute and control the singular values of convolutional layers: "
        "training trials, microbenchmarks, Ray Tune sweeps and HTML reports.",
    )
    verbosity_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if command is not None and name != command:
            sub.add_parser(name, help=help_text)  # listed in the help, never parses in this run
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv, verbosity = split_verbosity(sys.argv[1:] if argv is None else argv)
    # the first word that names a subcommand is it (the options before it take no values); none: "" imports none
    parser = build_parser(next((a for a in argv if a in SUBCOMMANDS), ""))
    args = parser.parse_args(argv)
    configure_logging(verbosity)
    try:
        return int(args._run(args) or 0)
    except CLIError as exc:
        print(f"svconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad input from the library: name the argument, no traceback
        print(f"svconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `svconv ... | head`: the reader left; nothing more to say
        sys.stdout = None  # type: ignore[assignment]  # no second error while Python flushes at exit
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
