"""One phase of the GPU check in its own process: ``python -m bench.gpu_check.worker PHASE --out DIR ...``.

A process per phase keeps a sticky CUDA error, a leak or an out-of-memory in one phase from spoiling the
next, and lets the orchestrator kill a phase at its cap without losing the rows it has written.
"""

from __future__ import annotations

import argparse
import os
import sys

PHASES = ("env", "correctness", "speed", "trials")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check.worker")
    p.add_argument("phase", choices=PHASES)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--size", default="full", choices=("full", "quick"))
    p.add_argument("--deadline", type=float, required=True, help="time.time() after which no item starts")
    a = p.parse_args(argv)

    from bench.gpu_check.record import Recorder

    if a.device == "cpu" and a.size == "quick":
        import torch

        # a smoke test, not a measurement: one thread, since a shared CPU with oversubscribed threads is
        # 10-50x slower on these tiny shapes
        torch.set_num_threads(1)
    rec = Recorder(a.out, a.phase, a.deadline)
    if a.phase == "env":
        from bench.gpu_check import env

        env.run(rec, a.device)
    elif a.phase == "correctness":
        from bench.gpu_check import correctness

        correctness.run(rec, a.device)
    elif a.phase == "speed":
        from bench.gpu_check import speed

        speed.run(rec, a.device, a.size)
    else:
        from bench.gpu_check import trials

        trials.run(rec, a.device, a.size, a.out)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # every row is on disk: skip the interpreter's (and CUDA's) slow teardown
