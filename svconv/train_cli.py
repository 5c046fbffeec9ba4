"""`svconv train`: not yet available (its issue has not landed)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("svconv train: not yet available", file=sys.stderr)
    return 1
