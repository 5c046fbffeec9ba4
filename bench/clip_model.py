"""Whole-model exact clipping of torchvision's resnet18 (``weights=None``, nothing downloaded), per layer.

``python -m bench.clip_model --size 224 --out DIR`` clips every conv of torchvision's resnet18 (ImageNet stem:
layer1 at 56x56 for a 224 input) to within ``--tol`` of ``--clip-to`` with ``svconv.control.clip_model_`` and
writes one row per layer to ``DIR/clip_model.csv`` (name, shape, input size, sigma after, passes, seconds);
the total is printed. The bench suite's ``resnet18`` is svconv's CIFAR variant (no stride-2 stem); this is
the model users bring.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.clip_drift import add_clip_arguments, parse_clip_arguments


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.clip_model", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument("--solver", default="auto")
    add_clip_arguments(p, "clip_model.csv")
    args = parse_clip_arguments(p, argv, "size")
    if args is None:
        return 2
    import pandas as pd
    import torch
    from torchvision.models import resnet18

    from svconv.control import clip_model_

    torch.manual_seed(args.seed)
    model = resnet18(weights=None)
    res = clip_model_(model, args.clip_to, (3, args.size, args.size), tol=args.tol, kinds=("conv",), measure_before=False,
                      solver=args.solver)  # fmt: skip
    df = pd.DataFrame(
        [dict(name=r.name, shape="x".join(map(str, r.shape)), input_size="x".join(map(str, r.input_size)),
              sigma_after=r.sigma_after, passes=r.passes, time_s=r.time_s) for r in res]  # fmt: skip
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "clip_model.csv", index=False)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"resnet18 @{args.size}: {len(df)} convs, {df['time_s'].sum():.1f} s, {int(df['passes'].sum())} passes, "
          f"worst sigma/c {df['sigma_after'].max() / args.clip_to:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
