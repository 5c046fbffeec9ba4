"""Seconds per training epoch, and the share of it spent in the SV-control step, per architecture and method.

Issue 4's benchmark: LipConvNet-5 (SOC, SOC-TT at a rank, and the peers' layers of issue 16) and a small WRN (every weight-control
method, full and TT) on ``mnist5k``. Each cell is one real trial (``svconv.trial.run_trial``, 1 warm-up
epoch excluded when ``--epochs`` > 1); its rows go to ``--results`` like any trial's, and the table is
printed and written as ``epoch_time.csv`` beside them.

    python bench/epoch_time.py --results bench_results/epoch_time            # this machine, defaults
    python bench/epoch_time.py --device cuda --epochs 3 --results DIR         # on a GPU
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from svconv.cli_logging import parse_args_logging

logger = logging.getLogger(__name__)



def wrn_methods() -> tuple[str, ...]:
    """``none`` and every registered method that controls a conv net's layers (``svconv.methods.registry``)."""
    from svconv.methods.registry import entries

    return ("none", *(name for name, cls in entries().items() if cls.bench_model == "control"))


def lipconvnet_methods() -> tuple[str, ...]:
    """``soc`` and every peer's method whose library imports here (``svconv.layers.peers``): LipConvNet's layers."""
    from svconv.layers.peers import PEERS, peer_problem

    return ("soc", *(name for name in PEERS if peer_problem(name) is None))


def cells(wrn: str, lipconvnet: str, rank: int | None, methods: tuple[str, ...], lipschitz: tuple[str, ...] = ("soc",)) -> list[dict]:
    """The (arch, method, rank) grid of the benchmark: LipConvNet with each of ``lipschitz``'s layers (SOC also as
    SOC-TT at ``rank``), the WRN with each of ``methods`` (also TT at ``rank``)."""
    out = [{"arch": lipconvnet, "method": m, "rank": None} for m in lipschitz]
    if rank and "soc" in lipschitz:
        out.append({"arch": lipconvnet, "method": "soc", "rank": rank})
    for m in methods:
        out.append({"arch": wrn, "method": m, "rank": None})
        if rank:
            out.append({"arch": wrn, "method": m, "rank": rank})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="bench_results/epoch_time", help="results folder (default: %(default)s)")
    parser.add_argument("--wrn", default="wrn-10-2", help="the small WRN (default: %(default)s)")
    parser.add_argument("--lipconvnet", default="lipconvnet-5", help="default: %(default)s")
    parser.add_argument("--rank", type=int, default=8, help="TT rank of the TT rows; 0: no TT rows (default: %(default)s)")
    parser.add_argument("--methods", default=",".join(wrn_methods()), help="WRN methods (default: %(default)s)")
    parser.add_argument("--lipschitz", default=",".join(lipconvnet_methods()), help="LipConvNet layers (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per cell; > 1 drops the first (default: %(default)s)")
    parser.add_argument("--n-train", type=int, default=None, help="training images (default: all of mnist5k)")
    parser.add_argument("--batch-size", type=int, default=128, help="default: %(default)s")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="default: %(default)s")
    args = parse_args_logging(parser, argv)

    import pandas as pd
    import torch

    from svconv.config import TrialConfig
    from svconv.results import read_table
    from svconv.results.provenance import device_name
    from svconv.trial import resolve_device, run_trial

    device = resolve_device(args.device)
    methods = tuple(m for m in args.methods.split(",") if m)
    rows = []
    lipschitz = tuple(m for m in args.lipschitz.split(",") if m)
    for cell in cells(args.wrn, args.lipconvnet, args.rank or None, methods, lipschitz):
        config = TrialConfig(
            **cell,
            dataset="mnist5k",
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=0.01,
            n_train=args.n_train,
            n_test=256,
            emp_lip_n=0,
            aa_n=0,
            device=args.device,
        )
        row = run_trial(config, args.results, sweep="bench-epoch-time")
        epochs = read_table(args.results, "epochs")
        epochs = epochs[epochs.trial_id == row["trial_id"]].sort_values("epoch")
        timed = epochs.iloc[1:] if len(epochs) > 1 else epochs  # the first epoch warms caches up
        epoch_s = float(timed.epoch_time_s.mean()) if len(timed) else float("nan")
        control_s = float(timed.control_time_s.mean()) if len(timed) else float("nan")
        rows.append(
            {
                **cell,
                "status": row["status"],
                "epoch_s": epoch_s,
                "control_s": control_s,
                "control_share": control_s / epoch_s if epoch_s > 0 else float("nan"),
                "test_acc": float(timed.test_acc.iloc[-1]) if len(timed) else float("nan"),
                "device": device_name(device),
                "threads": torch.get_num_threads(),
            }
        )
        logger.info(  # progress; the table at the end is the result
            f"{cell['arch']:>14} {cell['method']:>9} rank {str(cell['rank']):>4}: {epoch_s:8.2f} s/epoch, "
            f"control {control_s:7.2f} s ({rows[-1]['control_share']:.0%}) [{row['status']}]"
        )
    table = pd.DataFrame(rows)
    out = Path(args.results) / "epoch_time.csv"
    table.to_csv(out, index=False)
    print(f"\n{table.to_string(index=False)}\nwritten: {out}")
    return 0 if (table.status == "ok").all() else 1


if __name__ == "__main__":
    sys.exit(main())
