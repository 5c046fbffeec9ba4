"""The Parquet results schema: the one place that names every column.

``RESULTS_DIR/<table>/<file_id>.parquet`` for table in ``trials``, ``epochs``, ``layers``, ``bench``.
Readers pass these schemas explicitly, so files written by an older version read with the new
columns as nulls. Bump ``SCHEMA_VERSION`` when a column changes meaning; adding one does not need it.
"""

from __future__ import annotations

import typing

import pyarrow as pa

from svconv.options import OPTION_CLASSES

SCHEMA_VERSION = 1

TABLES = ("trials", "epochs", "layers", "bench")

_ARROW_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def _option_columns() -> tuple[tuple[str, pa.DataType], ...]:
    """Every method option (``svconv.options``, one dataclass per method) as a column, typed from its annotation.
    Per-kind targets (``clip_to_linear``, ``clip_to_bn``) are null where they are ``clip_to``."""
    out = []
    for cls in OPTION_CLASSES:
        for name, hint in typing.get_type_hints(cls).items():
            if name not in (n for n, _ in out):
                base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
                out.append((name, _ARROW_TYPES[base]))
    return tuple(out)


#: Trial options that are columns of ``trials`` (the full config is also kept as JSON): the common ones, then
#: every method's options, derived from their dataclasses.
CONFIG_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("arch", pa.string()),
    ("dataset", pa.string()),
    ("method", pa.string()),
    ("rank", pa.int64()),  # null: full (not TT-compressed)
    ("lam", pa.float64()),
    ("loss", pa.string()),  # ce | aol-offset
    ("loss_offset", pa.float64()),  # aol-offset: the margin offset trained with (defaults resolved); null for ce
    ("loss_temperature", pa.float64()),  # aol-offset: the temperature trained with; null for ce
    ("seed", pa.int64()),
    ("epochs", pa.int64()),
    ("batch_size", pa.int64()),
    ("lr", pa.float64()),
    ("optimizer", pa.string()),
    ("schedule", pa.string()),
    *_option_columns(),
)

_PROVENANCE = [
    pa.field("device_name", pa.string()),
    pa.field("host", pa.string()),
    pa.field("torch_version", pa.string()),
    pa.field("ray_version", pa.string()),
    pa.field("svconv_version", pa.string()),
    pa.field("git_commit", pa.string()),
    pa.field("start_time", pa.timestamp("us", tz="UTC")),
    pa.field("end_time", pa.timestamp("us", tz="UTC")),
    pa.field("schema_version", pa.int64()),
]

TRIALS = pa.schema(
    [
        pa.field("trial_id", pa.string()),
        pa.field("sweep", pa.string()),
        pa.field("status", pa.string()),  # ok | diverged | failed | stopped (by a sweep's early-stopping scheduler)
        pa.field("error", pa.string()),
        *[pa.field(name, typ) for name, typ in CONFIG_FIELDS],
        pa.field("config_json", pa.string()),
        # the family's input convention, which decides what the certificate multiplies (svconv.models.preprocessing):
        # standardize (per-channel mean/std) | center-scale (one std, SOC's code) | none (inputs in [0, 1], AOL's code)
        pa.field("preprocessing", pa.string()),
        # metrics, accuracies and ECE in percent
        pa.field("clean_acc", pa.float64()),
        pa.field("ece", pa.float64()),
        pa.field("cra_36", pa.float64()),
        pa.field("cra_72", pa.float64()),
        pa.field("cra_108", pa.float64()),
        pa.field("cra_255", pa.float64()),
        # AutoAttack L2 robust accuracy at 0.5, 36/255 and 0.25 (Senderovich et al.'s AA) in [0, 1] pixel units
        pa.field("autoattack_05", pa.float64()),
        pa.field("autoattack_36", pa.float64()),
        pa.field("autoattack_025", pa.float64()),
        pa.field("aa_clean_acc", pa.float64()),  # clean accuracy on the AutoAttack images
        pa.field("corruption_acc", pa.float64()),
        pa.field("lipschitz_bound", pa.float64()),
        pa.field("emp_lip_max", pa.float64()),
        pa.field("emp_lip_hist", pa.list_(pa.float64())),  # per-image ratios, [0, 1] pixel units
        # the same in the units of the inputs after the model's Normalize (Senderovich et al. 2022's "Lip.")
        pa.field("emp_lip_max_normalized", pa.float64()),
        pa.field("emp_lip_hist_normalized", pa.list_(pa.float64())),
        pa.field("compression", pa.float64()),
        pa.field("final_train_loss", pa.float64()),
        # test accuracy LEARNED_ACC_MARGIN points above chance, or last epoch's training loss LEARNED_LOSS_DROP below the
        # first's (svconv.metrics.learned); null for a trial that did not end ok, or without accuracy or a second epoch
        pa.field("learned", pa.bool_()),
        pa.field("epochs_done", pa.int64()),
        # timings in seconds, memory in MiB
        pa.field("train_time_s", pa.float64()),
        pa.field("control_time_s", pa.float64()),
        pa.field("control_share", pa.float64()),
        pa.field("epoch_time_s", pa.float64()),  # mean over epochs
        pa.field("peak_mem_mb", pa.float64()),
        *_PROVENANCE,
    ]
)

EPOCHS = pa.schema(
    [
        pa.field("trial_id", pa.string()),
        pa.field("sweep", pa.string()),
        pa.field("epoch", pa.int64()),  # 1-based
        pa.field("train_loss", pa.float64()),
        pa.field("train_acc", pa.float64()),
        pa.field("test_acc", pa.float64()),
        pa.field("orth_loss", pa.float64()),
        pa.field("lr", pa.float64()),
        pa.field("epoch_time_s", pa.float64()),
        pa.field("control_time_s", pa.float64()),
        pa.field("schema_version", pa.int64()),
    ]
)

LAYERS = pa.schema(
    [
        pa.field("trial_id", pa.string()),
        pa.field("sweep", pa.string()),
        pa.field("layer", pa.string()),  # module path in the model
        pa.field("kind", pa.string()),  # conv | tt | linear | bn | soc | aol
        pa.field("spectral_norm", pa.float64()),
        pa.field("norm_method", pa.string()),  # exact | gram | power
        pa.field("lipschitz_bound", pa.float64()),  # certified per-layer bound (>= spectral_norm)
        pa.field("c_in", pa.int64()),
        pa.field("c_out", pa.int64()),
        pa.field("kernel", pa.string()),  # e.g. "3x3"
        pa.field("stride", pa.int64()),
        pa.field("input_size", pa.string()),  # e.g. "32x32"
        pa.field("rank", pa.int64()),
        pa.field("schema_version", pa.int64()),
    ]
)

BENCH = pa.schema(
    [
        pa.field("bench_id", pa.string()),
        pa.field("suite", pa.string()),
        pa.field("scope", pa.string()),  # layer | model
        pa.field("arch", pa.string()),  # for scope == model
        pa.field("method", pa.string()),
        pa.field("tt", pa.bool_()),
        pa.field("rank", pa.int64()),
        pa.field("c_in", pa.int64()),
        pa.field("c_out", pa.int64()),
        pa.field("kernel", pa.string()),
        pa.field("input_size", pa.string()),
        pa.field("stride", pa.int64()),
        pa.field("padding", pa.string()),
        pa.field("ndim", pa.int64()),
        pa.field("device", pa.string()),  # cpu | cuda
        pa.field("dtype", pa.string()),
        pa.field("threads", pa.int64()),  # torch CPU threads during the measurement
        pa.field("repeats", pa.int64()),
        pa.field("iters", pa.int64()),  # iterations of an iterative method (power, clip passes, ...)
        pa.field("k", pa.int64()),  # PowerQR: number of top singular values
        pa.field("exact_method", pa.string()),  # how exact_value was obtained: fft | dense | lanczos | target
        pa.field("time_median_s", pa.float64()),
        pa.field("time_iqr_s", pa.float64()),
        pa.field("time_min_s", pa.float64()),
        pa.field("peak_mem_mb", pa.float64()),
        pa.field("value", pa.float64()),
        pa.field("exact_value", pa.float64()),
        pa.field("gap", pa.float64()),  # (value - exact) / exact, signed
        pa.field("flops", pa.float64()),
        pa.field("theory_speedup", pa.float64()),
        # control methods only (null otherwise): what the control step achieved
        pa.field("sigma_after", pa.float64()),  # layer: true spectral norm after it; model: worst layer's norm / target
        pa.field("target", pa.float64()),  # the norm aimed at (clip_to; 1 for AOL)
        pa.field("passes", pa.int64()),  # clip passes / power or projection steps (model: the most of any layer)
        pa.field("rel_change", pa.float64()),  # ||W' - W||_F / ||W||_F of the kernel(s)
        pa.field("status", pa.string()),  # ok | skipped | failed
        pa.field("reason", pa.string()),
        *_PROVENANCE,
    ]
)

SCHEMAS: dict[str, pa.Schema] = {"trials": TRIALS, "epochs": EPOCHS, "layers": LAYERS, "bench": BENCH}


def schema_for(table: str) -> pa.Schema:
    """The schema of ``table``; raises ValueError naming the allowed tables."""
    if table not in SCHEMAS:
        raise ValueError(f"table must be one of {', '.join(TABLES)}; got {table!r}")
    return SCHEMAS[table]
