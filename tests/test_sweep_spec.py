"""Sweep specs: expansion, exclude/only rules, and refusal of malformed specs with file:line messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from svconv.config import TrialConfig
from sweeps.cli import format_trials
from sweeps.spec import SpecError, load_spec, parse_spec
from svconv_cli.main import main as svconv_main

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"


BASE = """\
name: s
fixed: {arch: small-cnn, dataset: synthetic, epochs: 1}
"""


def spec(text: str, source: str = "t.yaml"):
    if text.startswith(BASE):  # BASE is flush left; the indented rest of a test's spec is dedented alone
        text = BASE + textwrap.dedent(text[len(BASE):])
    return parse_spec(textwrap.dedent(text), source=source)


def refuse(text: str, *fragments: str, line: int | None = None) -> str:
    with pytest.raises(SpecError) as info:
        spec(text)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, msg
    if line is not None:
        assert msg.startswith(f"t.yaml:{line}:"), msg
    return msg



def test_grid_is_the_cartesian_product_with_fixed_options():
    s = spec(
        BASE
        + """\
        grid:
          method: [none, clip, division]
          rank: [full, 4]
        """
    )
    assert len(s.trials) == 6
    configs = [t.config for t in s.trials]
    assert {(c.method, c.rank) for c in configs} == {(m, r) for m in ("none", "clip", "division") for r in (None, 4)}
    assert all(c.arch == "small-cnn" and c.dataset == "synthetic" and c.epochs == 1 for c in configs)
    # ids are the trial ids run_trial writes: the config's hash with the sweep name
    assert [t.trial_id for t in s.trials] == [c.trial_id("s") for c in configs]
    assert len({t.trial_id for t in s.trials}) == 6
    assert s.grid_options() == ["method", "rank"]
    assert s.trials[1].label == "method=none rank=4"


def test_linked_axis_sets_options_together_and_rules_filter():
    s = spec(
        BASE
        + """\
        grid:
          rank: [full, 4, 8]
          control:
            - {method: none}
            - {method: clip, clip_to: 1}
            - {method: clip, clip_to: 2}
            - {method: division}
          seed: [0, 1]
        exclude:
          - {method: clip, clip_to: 2, rank: [4, 8]}
          - {seed: 1, method: none}
        """
    )
    got = {(t.config.rank, t.config.method, t.config.clip_to, t.config.seed) for t in s.trials}
    expected = set()
    for rank in (None, 4, 8):
        for method, clip_to in (("none", 1.0), ("clip", 1.0), ("clip", 2.0), ("division", 1.0)):
            for seed in (0, 1):
                if method == "clip" and clip_to == 2.0 and rank in (4, 8):
                    continue
                if seed == 1 and method == "none":
                    continue
                expected.add((rank, method, clip_to, seed))
    assert got == expected and len(s.trials) == len(expected)


def test_only_keeps_matching_combinations_and_defaults_count_in_rules():
    s = spec(
        BASE
        + """\
        grid:
          method: [none, clip]
          lam: [0, 10]
        only:
          - {lam: 0}
          - {method: clip, lam: 10}
        """
    )
    assert {(t.config.method, t.config.lam) for t in s.trials} == {("none", 0.0), ("clip", 0.0), ("clip", 10.0)}


def test_values_are_normalised_so_ids_match_the_train_cli():
    s = spec(
        BASE
        + """\
        grid:
          lam: [1e4, 5e-4, 3]
          clip_to: [1]
        """
    )
    lams = [t.config.lam for t in s.trials]
    assert lams == [1e4, 5e-4, 3.0] and all(isinstance(v, float) for v in lams)
    direct = TrialConfig(arch="small-cnn", dataset="synthetic", epochs=1, lam=3.0, clip_to=1.0)
    assert s.trials[2].trial_id == direct.trial_id("s")


def test_resources_concurrency_retries():
    s = spec(
        BASE
        + """\
        grid: {seed: [0, 1]}
        resources: {cpus: 2, gpus: 0.25}
        concurrency: 3
        retries: 0
        reuse_workers: false
        """
    )
    assert (s.resources.cpus, s.resources.gpus) == (2.0, 0.25)
    assert s.resources.ray() == {"cpu": 2.0, "gpu": 0.25}
    assert (s.concurrency, s.retries, s.reuse_workers) == (3, 0, False)
    defaults = spec(BASE + "grid: {seed: [0]}\n")
    assert (defaults.resources.cpus, defaults.resources.gpus, defaults.concurrency, defaults.retries) == (1.0, 0.0, None, 2)


@pytest.mark.parametrize(
    "text, fragments, line",
    [
        (BASE + "grid:\n  methd: [none, clip]\n", ["unknown trial option 'methd'", "known options"], 4),
        (BASE + "grid:\n  method: [none, clipp]\n", ["method", "clipp", "known methods"], 4),
        (BASE + "grid:\n  rank: [4, 0]\n", ["rank", "0"], 4),
        (BASE + "grid:\n  seed: []\n", ["empty"], 4),
        (BASE + "grid: {}\n", ["grid is empty"], 3),
        (BASE + "grid:\n  seed: 3\n", ["must be a list"], 4),
        (BASE + "grid:\n  seed: [0]\nretries: -1\n", ["retries", ">= 0"], 5),
        (BASE + "grid:\n  seed: [0]\nresources: {cpus: 0}\n", ["cpus", "> 0"], 5),
        (BASE + "grid:\n  seed: [0]\nresources: {gpu: 1}\n", ["unknown resource 'gpu'"], 5),
        (BASE + "grid:\n  seed: [0]\nresources: {gpus: 1.5}\n", ["whole number"], 5),
        (BASE + "grid:\n  seed: [0]\nconcurency: 2\n", ["unknown spec key 'concurency'"], 5),
        (BASE + "grid:\n  seed: [0, 0]\n", ["same value twice"], 4),
        (BASE + "grid:\n  arch: [small-cnn]\n", ["both fixed and in the grid"], 4),
        (BASE + "grid:\n  seed: [0]\nexclude:\n  - {seed: 5}\n", ["matches no combination", "seed=5"], 6),
        (BASE + "grid:\n  seed: [0]\nexclude:\n  - {seed: 0}\n", ["no trials left"], 3),
        (BASE + "grid:\n  seed: [0]\nexclude:\n  - {sed: 0}\n", ["unknown trial option 'sed'"], 6),
        ("name: s\nfixed:\n  arch: small-cnn\n  dataset: synthetic\n  epochs: -2\ngrid:\n  seed: [0]\n", ["epochs", "-2"], 5),
        ("name: s\nfixed:\n  dataset: cifar10c\ngrid:\n  arch: [small-cnn]\n", ["dataset", "cifar10c"], 3),
        ("name: s\ngrid:\n  arch: [lipconvnet-5]\n  method: [clip]\n", ["soc"], 3),
        ("name: a/b\ngrid: {seed: [0]}\n", ["name must be"], 1),
        ("grid: {seed: [0]}\n", ["needs a `name`"], 1),
        ("name: s\ngrid: {seed: [0]\n", ["not valid YAML"], None),
        ("name: s\nname: t\ngrid: {seed: [0]}\n", ["'name' appears twice"], 2),
        ("", ["empty"], 1),
        # tags SafeLoader will not build: a ConstructorError, refused with its line like any bad YAML
        ("name: !!python/name:os.system ''\ngrid: {seed: [0]}\n", ["not valid YAML", "python/name:os.system", "not allowed"], 1),
        (BASE + "grid:\n  seed: [0, !!python/object/apply:os.getcwd []]\n", ["not valid YAML", "python/object/apply", "not allowed"], 4),
    ],
)
def test_malformed_specs_are_refused_naming_problem_and_line(text, fragments, line):
    refuse(text, *fragments, line=line)


def test_a_bad_value_in_a_linked_axis_names_its_line():
    msg = refuse(
        BASE
        + """\
        grid:
          control:
            - {method: none}
            - {method: clip, clip_to: -1}
        """,
        "clip_to",
        line=6,
    )
    assert "method: clip" in msg


def test_load_spec_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + "grid:\n  method: [none]\n  bogus: [1]\n")
    with pytest.raises(SpecError, match=rf"^{path}:5: grid: unknown trial option 'bogus'"):
        load_spec(path)
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name, n", [("demo", 7), ("wrn16-10-cifar10", 16), ("wrn16-10-cifar100", 16), ("lipconvnet", 27), ("vgg19", 6)])
def test_shipped_specs_validate(name, n):
    s = load_spec(SWEEPS / f"{name}.yaml")
    assert s.name == name and len(s.trials) == n


def test_wrn_spec_is_the_seed_grid():
    s = load_spec(SWEEPS / "wrn16-10-cifar10.yaml")
    got = {(t.config.rank, t.config.method, t.config.clip_to if t.config.method == "clip" else None) for t in s.trials}
    controls = {("none", None), ("clip", 1.0), ("clip", 2.0), ("division", None)}
    assert got == {(r, m, c) for r in (None, 192, 256, 320) for m, c in controls}
    assert all(t.config.arch == "wrn-16-10" and t.config.dataset == "cifar10" for t in s.trials)


def test_dry_run_lists_every_trial(capsys):
    assert svconv_main(["sweep", "run", str(SWEEPS / "demo.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    s = load_spec(SWEEPS / "demo.yaml")
    assert out.startswith(format_trials(s) + "\ncost estimate from bench.epoch_time rows in ")  # then the cost
    assert all(t.trial_id in out for t in s.trials)
    assert out.splitlines()[0].startswith("sweep demo: 7 trials")


def test_cli_refuses_a_bad_spec_with_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + "grid:\n  method: [nope]\n")
    assert svconv_main(["sweep", "run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("svconv sweep: error: ") and f"{path}:4:" in err and "nope" in err


def test_status_of_an_unknown_sweep_says_where_it_looked(tmp_path, capsys):
    assert svconv_main(["sweep", "status", "nothing", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no sweep named 'nothing'" in err and str(tmp_path) in err


def test_cli_refuses_an_unsafe_yaml_tag_with_exit_2_and_its_line(tmp_path, capsys):
    path = tmp_path / "tagged.yaml"
    path.write_text(BASE + "grid:\n  seed: [!!python/object/new:os.system [touch pwned]]\n")
    assert svconv_main(["sweep", "run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: not valid YAML" in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()


def test_status_takes_a_name_as_run_does(tmp_path, capsys):
    """`status NAME/` is sweep NAME (tab completion adds the slash); `../x` is refused, not read."""
    from sweeps.state import SweepState

    storage = tmp_path / "storage"
    SweepState.from_spec(spec(BASE + "grid:\n  seed: [0, 1]\n"), None, storage).save()
    assert svconv_main(["sweep", "status", "s", "--storage", str(storage), "--json"]) == 0
    plain = capsys.readouterr().out
    assert len(plain.splitlines()) == 2
    assert svconv_main(["sweep", "status", "s/", "--storage", str(storage), "--json"]) == 0
    assert capsys.readouterr().out == plain
    # a sweep next to the storage root, reachable by `..`: refused before anything is read
    SweepState.from_spec(spec(BASE.replace("name: s", "name: x") + "grid:\n  seed: [0]\n"), None, tmp_path).save()
    for bad in ("../x", "a/b", ".", "/abs"):
        for action in ("status", "resume"):
            assert svconv_main(["sweep", action, bad, "--storage", str(storage)]) == 2, (action, bad)
            err = capsys.readouterr().err
            assert "sweep NAME must be letters, digits" in err and repr(bad) in err, err


def test_a_spec_option_the_method_does_not_use_is_refused_at_its_line():
    text = "name: s\nfixed:\n  arch: small-cnn\n  dataset: synthetic\n  method: division\n  clip_tol: 0.05\ngrid:\n  seed: [0]\n"
    with pytest.raises(SpecError) as exc:
        parse_spec(text, source="t.yaml")
    msg = str(exc.value)
    assert msg.startswith("t.yaml:6:") and "clip_tol: not used by method 'division'" in msg and "takes clip_to," in msg, msg
