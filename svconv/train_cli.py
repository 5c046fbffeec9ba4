"""`svconv train`: run one trial (train, evaluate, write its Parquet rows) from the command line.

Every ``TrialConfig`` field is an option, generated from the dataclass (``--clip-to`` for ``clip_to``,
``--amp/--no-amp`` for booleans, ``none`` for optional values), so the options and the config never
drift. Exit code 0 when the trial ends ``ok``, 1 when it ends ``diverged`` or ``failed``, 2 for bad
options (unknown architecture, method or dataset: the message lists the known ones).
"""

from __future__ import annotations

import argparse
import logging
import dataclasses
import json
import sys
import types
import typing
from typing import Any, Callable

from svconv.config import TrialConfig
from svconv.options import option_help

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Train one model with one way of controlling singular values, measure it (accuracy, ECE, certified "
    "and AutoAttack robustness, empirical Lipschitz, layer spectra, timings) and write its rows to the "
    "trials/, epochs/ and layers/ Parquet tables of --results. Exit code 0: ok; 1: diverged or failed; "
    "2: bad options."
)

#: Help of each TrialConfig field (the methods' options: from their dataclasses); a test checks that every field has one.
FIELD_HELP: dict[str, str] = {
    "arch": "architecture: small-cnn, lipconvnet-N, wrn-D-W, vgg19, resnet18, aol-small|medium|large|fc|std|conv",
    "dataset": "dataset: mnist5k, cifar10, cifar100, synthetic",
    "method": "singular-value control, from the registry of svconv.methods: %(methods)s",
    "rank": "TT rank of the convs; none: full convs",
    "lam": "coefficient of the orthogonality loss of the TT layers",
    "loss": "training loss: ce (cross-entropy), aol-offset (AOL's offset cross-entropy, Prach & Lampert 2022)",
    "loss_offset": "aol-offset: margin subtracted from the true class's score; none: sqrt(2)",
    "loss_temperature": "aol-offset: temperature; none: loss-offset / (4 sqrt(2)), 1/4 at the default offset",
    "seed": "seed of initialisation, shuffling and augmentation",
    "epochs": "training epochs",
    "batch_size": "training batch size",
    "lr": "initial learning rate; none: the architecture family's default for the optimiser (sgd or adam; "
    "svconv.models.default_lr)",
    "optimizer": "optimiser: sgd, sgd-nesterov, adam",
    "momentum": "SGD momentum",
    "weight_decay": "L2 weight decay",
    "schedule": "learning-rate schedule: multistep (x0.1 at 30/60/80%% of the epochs), cosine, constant, "
    "aol (x0.1 at 90/99/99.9%%, AOL's)",
    "amp": "mixed precision (CUDA only)",
    "device": "device: auto (CUDA when available), cpu, cuda",
    "n_train": "use the first N training images; none: all",
    "n_test": "use the first N test images; none: all",
    "augment": "standard CIFAR augmentation (ignored for other datasets)",
    "aa_n": "test images for AutoAttack (L2, at each of --aa-radii); 0 skips it",
    "aa_radii": "AutoAttack L2 radii in [0, 1] pixel units, comma-separated from 0.25 (Senderovich et al.'s AA: "
    "eps 0.5 on inputs normalised by std 0.5), 36/255, 0.5",
    "emp_lip_n": "test images for the empirical Lipschitz ratios; 0 skips them",
    "fail_at_epoch": "testing: raise at the start of this epoch (the trial is recorded as failed)",
    "data_root": "folder of the CIFAR / CIFAR-10-C / CIFAR-100-C files (never downloaded)",
    **{name: text.replace("%", "%%") for name, text in option_help().items()},  # the methods' options
}

#: Trial columns printed in the summary, with their format.
SUMMARY = (
    ("clean_acc", "clean accuracy (%)", "{:.2f}"),
    ("ece", "ECE (%)", "{:.2f}"),
    ("lipschitz_bound", "Lipschitz bound", "{:.4g}"),
    ("cra_36", "certified acc @36/255 (%)", "{:.2f}"),
    ("cra_72", "certified acc @72/255 (%)", "{:.2f}"),
    ("cra_108", "certified acc @108/255 (%)", "{:.2f}"),
    ("cra_255", "certified acc @1 (%)", "{:.2f}"),
    ("aa_clean_acc", "clean acc on AutoAttack images (%)", "{:.2f}"),
    ("autoattack_025", "AutoAttack L2 eps 0.25 px (%)", "{:.2f}"),
    ("autoattack_36", "AutoAttack L2 eps 36/255 px (%)", "{:.2f}"),
    ("autoattack_05", "AutoAttack L2 eps 0.5 px (%)", "{:.2f}"),
    ("emp_lip_max", "empirical Lipschitz max (pixel units)", "{:.4g}"),
    ("emp_lip_max_normalized", "empirical Lipschitz max (normalised-input units)", "{:.4g}"),
    ("corruption_acc", "CIFAR-C accuracy (%)", "{:.2f}"),
    ("compression", "compression ratio", "{:.3g}"),
    ("final_train_loss", "final train loss", "{:.4f}"),
    ("learned", "learned (svconv.metrics.learned)", "{}"),
    ("epochs_done", "epochs done", "{}"),
    ("train_time_s", "train time (s)", "{:.2f}"),
    ("epoch_time_s", "time per epoch (s)", "{:.2f}"),
    ("control_time_s", "control time (s)", "{:.3f}"),
    ("control_share", "control share", "{:.1%}"),
    ("peak_mem_mb", "peak memory (MiB)", "{:.0f}"),
    ("device_name", "device", "{}"),
)


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null", "") else parse(text)

    convert.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in its errors
    return convert


def _option_type(hint: Any) -> tuple[Callable[[str], Any] | None, Any]:
    """``(converter, base type)`` for a field's type hint: int/float/str/bool, possibly optional."""
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    if base is bool:
        return None, bool
    if base not in (int, float, str):
        raise TypeError(f"TrialConfig field type {hint!r} has no command-line form; extend svconv.train_cli")
    return (_optional(base) if optional else base), base


class _MethodList:
    """``name: summary; ...`` of every training method, computed when formatted (the registry imports torch,
    which ``svconv --help`` should not wait for)."""

    def __str__(self) -> str:
        from svconv.methods import method_help

        return method_help()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    hints = typing.get_type_hints(TrialConfig)
    trial = parser.add_argument_group("trial options (the fields of svconv.config.TrialConfig)")
    for f in dataclasses.fields(TrialConfig):
        convert, base = _option_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_text = FIELD_HELP.get(f.name, f.name)
        if base is bool:
            trial.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        else:
            metavar = {int: "N", float: "X"}.get(base, f.name.upper())
            action = trial.add_argument(flag, dest=f.name, type=convert, default=f.default, metavar=metavar, help=help_text)
            if f.name == "method":
                action.methods = _MethodList()  # %(methods)s: read from the registry only when help is printed

    out = parser.add_argument_group("output")
    out.add_argument("--results", required=True, metavar="DIR", help="results folder (Parquet tables trials/, epochs/, layers/)")
    out.add_argument("--sweep", default=None, metavar="NAME", help="sweep name recorded with the rows (part of the trial id)")
    out.add_argument(
        "--checkpoint-dir",
        default=None,
        metavar="DIR",
        help="save a checkpoint after every epoch here and resume from the latest one found",
    )
    out.add_argument("--json", action="store_true", help="print the trials row as JSON instead of the summary")
    out.add_argument("--raise", dest="raise_on_error", action="store_true", help="re-raise a failure with its traceback (debugging)")


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    """The TrialConfig of parsed options (ValueError naming a bad field)."""
    return TrialConfig.from_dict({name: getattr(args, name) for name in TrialConfig.field_names()})


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # ValueError -> exit 2 with the message on stderr
    if args.sweep is not None:
        from svconv.config import check_sweep_name

        check_sweep_name(args.sweep, "--sweep")
    from svconv.results import check_writable

    check_writable(args.results)  # before training, not after it
    from svconv.cli_logging import quiet
    from svconv.trial import run_trial

    row = run_trial(
        config,
        args.results,
        sweep=args.sweep,
        checkpoint_dir=args.checkpoint_dir,
        raise_on_error=args.raise_on_error,
        progress=False if quiet() else None,  # None: bars on a terminal
    )
    if args.json:
        print(json.dumps(row, default=str, indent=1))
    else:
        print(format_summary(row, args.results))
    if row["status"] != "ok":
        logger.error("trial %s %s: %s", row["trial_id"], row["status"], row["error"])
        return 1
    if row.get("learned") is False:
        logger.warning("trial %s did not learn (test accuracy near chance and the training loss not falling) at lr %g; "
                       "try another --lr or more --epochs", row["trial_id"], config.lr)  # fmt: skip
    return 0


def format_summary(row: dict[str, Any], results_dir: str) -> str:
    """A short human-readable account of a trials row."""
    head = f"trial {row['trial_id']}: {row['status']} ({row['arch']}, {row['dataset']}, method {row['method']}"
    head += f", rank {row['rank']})" if row.get("rank") is not None else ")"
    lines = [head]
    for key, label, fmt in SUMMARY:
        value = row.get(key)
        if value is not None:
            lines.append(f"  {label:<36} {fmt.format(value)}")
    lines.append(f"  rows written under {results_dir}/ (trials, epochs, layers)")
    return "\n".join(lines)
