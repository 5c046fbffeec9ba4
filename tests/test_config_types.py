"""Every TrialConfig field is type-checked from its annotation: in Python, in sweep specs (YAML, with the
line) and on the command line. A quoted YAML boolean (``amp: "no"``) is a string and would be truthy."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from svconv.config import TrialConfig
from sweeps.spec import SpecError, parse_spec
from svconv_cli.main import main as svconv_main

#: A value of the wrong type for each kind of field.
WRONG = {bool: "no", int: 1.5, float: "0.1", str: 5}


def _base(hint: typing.Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def test_every_field_refuses_a_value_of_the_wrong_type():
    hints = typing.get_type_hints(TrialConfig)
    for f in dataclasses.fields(TrialConfig):
        base = _base(hints[f.name])
        with pytest.raises(ValueError, match=rf"^{f.name} must be") as exc:
            TrialConfig(**{f.name: WRONG[base]})
        assert repr(WRONG[base]) in str(exc.value)


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("amp", "no", "true or false"),
        ("augment", "false", "true or false"),
        ("bn_concat", "off", "true or false"),
        ("amp", 0, "true or false"),
        ("data_root", 5, "a string or null"),
        ("epochs", True, "an integer"),
        ("rank", 8.0, "an integer or null"),
        ("lr", float("nan"), "a finite number"),
        ("clip_to", float("inf"), "a finite number"),
        ("seed", None, "an integer"),
    ],
)
def test_bad_values_name_the_field_and_what_it_takes(field, value, allowed):
    with pytest.raises(ValueError) as exc:
        TrialConfig(**{field: value})
    msg = str(exc.value)
    assert msg.startswith(f"{field} must be {allowed}") and repr(value) in msg


def test_values_of_the_right_type_pass():
    c = TrialConfig(method="fastclip", amp=False, augment=False, bn_concat=True, data_root="/data", rank=None, lr=1, clip_to=2.5)
    assert c.amp is False and c.bn_concat is True and c.lr == 1


@pytest.mark.parametrize("option", ['amp: "no"', 'augment: "false"', "bn_concat: 'off'", "data_root: 5"])
def test_a_sweep_spec_refuses_a_mistyped_option_with_its_line(option):
    name = option.split(":")[0]
    text = f"name: s\nfixed:\n  arch: small-cnn\n  dataset: synthetic\n  {option}\ngrid:\n  seed: [0]\n"
    with pytest.raises(SpecError) as exc:
        parse_spec(text, source="t.yaml")
    msg = str(exc.value)
    assert msg.startswith("t.yaml:5:") and f"{name} must be" in msg, msg


def test_unquoted_yaml_booleans_are_booleans():
    text = "name: s\nfixed: {arch: small-cnn, dataset: synthetic, amp: no, augment: off}\ngrid:\n  seed: [0]\n"
    config = parse_spec(text, source="t.yaml").trials[0].config
    assert config.amp is False and config.augment is False


@pytest.mark.parametrize("argv", [["--epochs", "1.5"], ["--amp", "no"], ["--lr", "fast"]])
def test_the_command_line_refuses_mistyped_options(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        svconv_main(["train", "--results", str(tmp_path), *argv])
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


@pytest.mark.parametrize("arch, limit", [("small-cnn", 15), ("vgg19", 459), ("lipconvnet-5", 633)])
def test_a_rank_that_compresses_no_layer_is_refused_with_the_numbers(arch, limit):
    method = "soc" if arch.startswith("lipconvnet") else "none"
    for rank in (limit, 10_000):
        with pytest.raises(ValueError, match=rf"rank must be below {limit} for arch '{arch}'; got {rank}"):
            TrialConfig(arch=arch, method=method, rank=rank)
    TrialConfig(arch=arch, method=method, rank=limit - 1)  # compresses the widest layer


def test_the_rank_limit_is_where_the_built_model_stops_compressing():
    from svconv.models import build_model

    def replaced(rank: int) -> int:
        model = build_model("small-cnn", 10, (3, 32, 32), (0.5,) * 3, (0.25,) * 3, rank=rank)
        return len(model.tt_report.replaced)

    assert replaced(14) >= 1 and replaced(15) == 0  # the refusal above is exactly the dense case


def test_the_command_line_refuses_a_rank_at_the_channel_count(tmp_path, capsys):
    code = svconv_main(["train", "--results", str(tmp_path), "--rank", "10000", "--dataset", "synthetic"])
    err = capsys.readouterr().err
    assert code == 2 and "rank must be below 15" in err and "10000" in err
    assert not (tmp_path / "trials").exists()


@pytest.mark.parametrize("value", ["0.3", "0.5,0.5", "", "36/255;0.5"])
def test_aa_radii_names_the_radii_it_takes(value):
    with pytest.raises(ValueError, match=r"^aa_radii must be distinct comma-separated radii from 0.25, 36/255, 0.5 \(pixel units\)"):
        TrialConfig(aa_radii=value)
    assert TrialConfig(aa_radii=" 0.25, 36/255,0.5").aa_radii == " 0.25, 36/255,0.5"
@pytest.mark.parametrize(
    "method,option,value",
    [("division", "clip_tol", 0.05), ("none", "clip_to", 2.0), ("clip", "power_iters", 3), ("soc", "clip_every", 10),
     ("fastclip-clipbn", "bn_concat", True), ("gram", "clip_k", 2)],
)
def test_an_option_the_method_does_not_use_is_refused_with_what_it_takes(method, option, value):
    from svconv.methods import METHODS
    from svconv.options import option_names

    with pytest.raises(ValueError) as exc:
        TrialConfig(method=method, arch="lipconvnet-5" if method == "soc" else "small-cnn", **{option: value})
    msg = str(exc.value)
    takes = ", ".join(option_names(METHODS[method].options)) or "no option"
    assert msg.startswith(f"{option}: not used by method {method!r}") and msg.endswith(f"takes {takes}"), msg


def test_the_trial_id_hashes_the_effective_options_only():
    """An option the method does not use, left at its default, and a per-kind target equal to clip_to do not
    change the id; an option the method uses does."""
    base = TrialConfig(method="division", clip_to=2.0)
    assert TrialConfig(method="division", clip_to=2.0, clip_to_linear=2.0, clip_to_bn=2.0).trial_id() == base.trial_id()
    assert TrialConfig(method="division", clip_to=2.0, clip_tol=0.01, clip_k=1).trial_id() == base.trial_id()
    assert TrialConfig(method="division", clip_to=2.0, power_iters=2).trial_id() != base.trial_id()
    assert TrialConfig(method="clip", clip_tol=0.05).trial_id() != TrialConfig(method="clip").trial_id()
    assert base.method_options().clip_to_bn == 2.0 and not hasattr(base.method_options(), "clip_tol")


def test_every_method_option_is_a_trials_column_and_a_cli_option_with_help():
    from svconv.options import option_fields
    from svconv.results.schema import CONFIG_FIELDS
    from svconv.train_cli import FIELD_HELP

    columns = {name for name, _ in CONFIG_FIELDS}
    for name, f in option_fields().items():
        assert name in columns and name in TrialConfig.field_names(), name
        assert FIELD_HELP[name] == f.metadata["help"].replace("%", "%%")
