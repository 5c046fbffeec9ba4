"""What a control step meets during training, and what it costs: a short real training run with exact clipping.

``python -m bench.clip_drift --arch small-cnn --dataset synthetic --steps 20 --out DIR`` trains the model with
SGD and, after every optimiser step, clips every conv and linear layer with ``svconv.control.clip_model_``
(to within ``--tol`` of ``--clip-to``, each layer warm-started with its previous level, as training runs
``clip``). Before each control step it records, per conv layer (untimed): how many singular values of each
frequency's transfer matrix exceed ``clip_to (1 + tol)`` (the largest count over the frequencies, the mean,
and the share of frequencies with any), out of ``min(c_out, c_in s^d)`` per frequency, and the same counts
above the clip level the step starts from (``level_*``: the values the secant's clip touches); and it times, on a
copy of the same weights, one plain clip pass (``clip_(tol=0, max_passes=1)``) beside the control step
itself. One row per (step, layer) in ``DIR/clip_drift.csv``; the summary per layer is printed.

The counts say whether clipping only the top-k singular subspace per frequency could serve the control step
(issue 23, goal 2); the time ratio is the control step against one full pass after drift.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn


def _counts(conv: nn.Module, spatial, threshold: float) -> tuple[int, float, float, int]:
    """(largest count over frequencies, mean count, share of frequencies with any, values per frequency)."""
    from svconv.control.layer import conv_grid
    from svconv.spectrum.exact import gram_singular_values, transfer_matrices

    grid, stride, _ = conv_grid(conv, spatial)
    P, mult = transfer_matrices(conv.weight.detach(), grid, stride)
    above = (gram_singular_values(P) > threshold).sum(-1).to(torch.float64)
    w = mult.to(torch.float64)
    return int(above.max()), float((above * w).sum() / w.sum()), float(((above > 0) * w).sum() / w.sum()), int(P.shape[-1] if P.shape[-1] < P.shape[-2] else P.shape[-2])


def add_clip_arguments(p: argparse.ArgumentParser, csv: str) -> None:
    """The options ``bench.clip_drift`` and ``bench.clip_model`` share: the target, the band, the seed, the folder."""
    p.add_argument("--clip-to", type=float, default=1.0)
    p.add_argument("--tol", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help=f"folder for {csv}")


def parse_clip_arguments(p: argparse.ArgumentParser, argv: list[str] | None, count: str) -> argparse.Namespace | None:
    """Parsed options, or None after an error on stderr naming them (exit code 2): ``count`` must be >= 1."""
    args = p.parse_args(argv)
    if getattr(args, count.replace("-", "_")) < 1 or not args.clip_to > 0 or not 0 < args.tol < 1:
        print(f"error: --{count} must be >= 1, --clip-to > 0 and --tol in (0, 1)", file=sys.stderr)
        return None
    return args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.clip_drift", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="small-cnn")
    p.add_argument("--dataset", default="synthetic", help="synthetic or mnist5k (nothing is downloaded)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    add_clip_arguments(p, "clip_drift.csv")
    args = parse_clip_arguments(p, argv, "steps")
    if args is None:
        return 2
    import pandas as pd

    from svconv import control
    from svconv.data import load_dataset
    from svconv.models import build_model

    torch.manual_seed(args.seed)
    data = load_dataset(args.dataset, n_train=args.batch_size * args.steps, n_test=16, augment=False, seed=args.seed)
    model = build_model(args.arch, data.num_classes, data.input_shape, data.mean, data.std)
    shape = data.input_shape
    layers = {name: (m, sp) for name, kind, m, sp in control.supported_layers(model, shape, ("conv",))}
    first = control.clip_model_(model, args.clip_to, shape, tol=args.tol, measure_before=False)
    levels = {r.name: r.level for r in first}
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loader = torch.utils.data.DataLoader(data.train, batch_size=args.batch_size, shuffle=True)
    rows = []
    threshold = args.clip_to * (1 + args.tol)
    for step, (x, y) in enumerate(loader, start=1):
        model.train()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        before = {name: _counts(m, sp, threshold) for name, (m, sp) in layers.items()}
        # the secant clips at its level (below the target), so every value above the level is touched
        at_level = {name: _counts(m, sp, levels[name]) for name, (m, sp) in layers.items()}
        plain = copy.deepcopy(model)
        t_pass = {}
        for name, (m, sp) in layers.items():
            start = time.perf_counter()
            control.clip_(plain.get_submodule(name), args.clip_to, sp, tol=0, max_passes=1)
            t_pass[name] = time.perf_counter() - start
        levels_before = dict(levels)
        results = control.clip_model_(model, args.clip_to, shape, tol=args.tol, levels=levels, measure_before=False)
        levels = {r.name: r.level for r in results}
        for r in results:
            if r.name not in layers:
                continue
            mx, mean, share, size = before[r.name]
            lmx, lmean, lshare, _ = at_level[r.name]
            rows.append(dict(step=step, layer=r.name, shape="x".join(map(str, r.shape)), input_size="x".join(map(str, r.input_size)),
                             per_freq=size, above_max=mx, above_mean=mean, freq_share=share, level=levels_before[r.name],
                             level_max=lmx, level_mean=lmean, level_share=lshare, passes=r.passes,
                             sigma_after=r.sigma_after, control_s=r.time_s, pass_s=t_pass[r.name],
                             ratio=r.time_s / t_pass[r.name] if t_pass[r.name] > 0 else math.nan))  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / "clip_drift.csv", index=False)
    summary = df[df["step"] > 1].groupby(["layer", "shape", "input_size", "per_freq"]).agg(
        above_max=("above_max", "max"), above_mean=("above_mean", "mean"), freq_share=("freq_share", "mean"),
        level_max=("level_max", "max"), level_mean=("level_mean", "mean"),
        passes=("passes", "mean"), ratio=("ratio", "median"), worst=("sigma_after", "max"),
    )  # fmt: skip
    print(summary.to_string(float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
