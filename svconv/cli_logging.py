"""Logging set-up of the command lines (``svconv``, ``python -m bench.X``): diagnostics on stderr, -v/-q.

Library modules log to ``logging.getLogger(__name__)`` and configure nothing (a program importing svconv
decides where its records go); a command line calls :func:`configure_logging` once. Standard library only,
so that any entry point (the CLI, the GPU check's orchestrator) can use it without importing torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

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


def verbosity_options(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose`` and ``-q/--quiet`` in ``parser``'s help; :func:`split_verbosity` reads them, wherever they stand."""
    group = parser.add_argument_group("output (anywhere on the line: `svconv sweep run x.yaml -q`)")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (debug)")
    group.add_argument("-q", "--quiet", action="count", default=0, help="fewer log lines: -q warnings, -qq errors only")


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


def parse_args_logging(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` (default ``sys.argv[1:]``) with -v/-q anywhere on the line, then
    :func:`configure_logging`: the set-up of a ``python -m bench.X`` script in one call."""
    verbosity_options(parser)
    rest, verbosity = split_verbosity(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(rest)
    configure_logging(verbosity)
    return args


def quiet() -> bool:
    """Whether the command line asked for warnings only (-q): its progress bars stay off then."""
    return not logging.getLogger("svconv").isEnabledFor(logging.INFO)
