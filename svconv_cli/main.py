"""``svconv`` entry point. Subcommands: train, bench, sweep, report.

Each subcommand lives in its owner package as a module with ``add_arguments(parser)`` and
``run(args) -> int``; those modules import heavy libraries (torch, ray) inside ``run`` so that
``svconv --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("svconv.train_cli", "train one model (one trial) and write its Parquet rows"),
    "bench": ("bench.cli", "microbenchmark the speed and accuracy of spectral methods"),
    "sweep": ("sweeps.cli", "run, submit, resume or inspect a Ray Tune sweep"),
    "report": ("analysis.cli", "write the HTML comparison report of a results folder"),
}


#: the packages whose loggers the CLI shows (Ray's and other libraries' keep their own settings)
LOGGERS = ("svconv", "sweeps", "bench", "analysis", "svconv_cli")


class _Stderr(logging.StreamHandler):
    """A handler writing to the ``sys.stderr`` of the moment (tests and tools may swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property reads sys.stderr instead
        pass


class _Format(logging.Formatter):
    """Info as it is; warnings and errors prefixed by their level, as the CLI's own error lines are."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def configure_logging(verbosity: int = 0) -> None:
    """Show svconv's log records on stderr: ``verbosity`` 0 info and above, 1 (``-v``) debug, -1 (``-q``)
    warnings and errors, -2 (``-qq``) errors only. Idempotent: one handler per logger, level reset each call."""
    level = {1: logging.DEBUG, 0: logging.INFO, -1: logging.WARNING}.get(max(-2, min(1, verbosity)), logging.ERROR)
    for name in LOGGERS:
        log = logging.getLogger(name)
        log.setLevel(level)
        if not any(isinstance(h, _Stderr) for h in log.handlers):
            handler = _Stderr()
            handler.setFormatter(_Format("%(message)s"))
            log.addHandler(handler)
        log.propagate = False  # not twice when the root logger has a handler too


def _verbosity_options(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_argument_group("output (anywhere on the line: `svconv sweep run x.yaml -q`)")
    group.add_argument("-v", "--verbose", action="count", default=default, help="more log lines (debug)")
    group.add_argument("-q", "--quiet", action="count", default=default, help="fewer log lines: -q warnings, -qq errors only")


_VERBOSITY = {"-v": 1, "--verbose": 1, "-vv": 2, "-q": -1, "--quiet": -1, "-qq": -2}


def split_verbosity(argv: Sequence[str]) -> tuple[list[str], int]:
    """Take ``-v``/``-q`` (and ``-vv``, ``-qq``, the long forms) out of ``argv`` wherever they stand before
    ``--``, so that they work after any subcommand, however deeply nested. Returns the rest and the level."""
    rest, level, tail = [], 0, False
    for a in argv:
        if not tail and a in _VERBOSITY:
            level += _VERBOSITY[a]
        else:
            tail = tail or a == "--"
            rest.append(a)
    return rest, level


class CLIError(Exception):
    """A user error: printed on stderr without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svconv",
        description="Compute and control the singular values of convolutional layers: "
        "training trials, microbenchmarks, Ray Tune sweeps and HTML reports.",
    )
    _verbosity_options(parser, 0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv, verbosity = split_verbosity(sys.argv[1:] if argv is None else argv)
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
