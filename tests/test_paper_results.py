"""The papers' numbers (``analysis/data/paper_results.csv``): every table of Senderovich et al. 2022 with its
row count, cells against the paper's text, the shared reference's rows kept, and the λ grid (Tab. 3)
printed beside our λ sweep in the summary tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.paper import PAPER_CSV, REFERENCE_CSV, TABLE_ROWS, load_paper_results
from analysis.tables import prepare_trials, summary_tables
from svconv.results.schema import TRIALS

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_8910d2129a04ed0d.txt"
RAW = pd.read_csv(PAPER_CSV, dtype=str, keep_default_na=False)


def test_every_table_is_there_with_the_papers_row_count():
    counts = RAW.groupby(["source", "table"]).size().to_dict()
    assert counts == TABLE_ROWS
    paper = load_paper_results()
    assert len(paper) == len(RAW) and paper["source_label"].str.contains("Senderovich et al. 2022, table 3").sum() == 18
    t3 = paper[paper["table"] == "3"]
    assert set(t3["arch"]) == {"lipconvnet-5", "lipconvnet-20", "lipconvnet-30"} and (t3["rank"] == 256).all()
    assert t3.groupby("arch").size().to_dict() == {"lipconvnet-5": 6, "lipconvnet-20": 6, "lipconvnet-30": 6}
    # no row twice, and every metric column numeric
    key = ["source", "table", "dataset", "arch", "method", "clip_to", "rank", "lam", "loss_offset"]
    assert not RAW.duplicated(key).any()
    for col in RAW.columns.drop(["source", "table", "dataset", "arch", "method"]):
        pd.to_numeric(RAW[col].replace("", np.nan), errors="raise")


@pytest.mark.parametrize(
    "table, arch, method, rank, lam, clip_to, column, value",
    [
        ("1", "lipconvnet-20", "soc-tt", 256, None, None, "clean_acc", 78.4),
        ("1", "lipconvnet-30", "soc", None, None, None, "clean_acc_std", 1.0),
        ("1", "lipconvnet-5", "soc-tt", 128, None, None, "cra_36", 62.7),
        ("1", "lipconvnet-5", "soc-tt", 128, None, None, "cra_36_std", 0.1),
        ("2", "wrn-16-10", "division", 256, None, None, "autoattack_025", 56.28),
        ("2", "wrn-16-10", "clip", 320, None, 2.0, "corruption_acc", 74.34),
        ("3", "lipconvnet-5", "soc-tt", 256, 5e3, None, "emp_lip_max_normalized", 0.93),
        ("3", "lipconvnet-20", "soc-tt", 256, 8e4, None, "autoattack_025", 35.0),
        ("3", "lipconvnet-30", "soc-tt", 256, 1.2e6, None, "emp_lip_max_normalized", 0.56),
        ("3", "lipconvnet-30", "soc-tt", 256, 9e5, None, "corruption_acc", 67.71),
        ("4", "wrn-16-10", "clip", None, None, 1.0, "ece", 10.09),
        ("4", "wrn-16-10", "division", 192, None, None, "speedup", 4.1),
    ],
)
def test_cells_as_printed_in_the_paper(table, arch, method, rank, lam, clip_to, column, value):
    p = load_paper_results()
    m = (p["table"] == table) & (p["arch"] == arch) & (p["method"] == method)
    for col, v in (("rank", rank), ("lam", lam), ("clip_to", clip_to)):
        m &= p[col].isna() if v is None else p[col] == v
    (got,) = p.loc[m, column]
    assert got == value


@pytest.mark.skipif(not SEED.is_file(), reason="the paper's text is not beside the project")
def test_every_row_reads_as_in_the_papers_text():
    """Each CSV row, printed in the layout of its table, occurs verbatim in the text of the paper."""
    text = SEED.read_text()
    s = RAW[RAW["source"] == "senderovich2022"]
    dash = lambda v: v or "–"  # noqa: E731
    for _, r in s[s["table"] == "1"].iterrows():
        cells = [f"{r[c]} ± {r[c + '_std']}" for c in ("acc", "autoattack", "cifar_c", "ece", "provable_robust")]
        assert "| " + " | ".join([dash(r["rank"]), r["arch"].split("-")[1], *cells, r["clip_speedup"], r["compression"]]) + " |" in text
    for table, head in (("2", "Speedup"), ("4", "Clip (s)")):
        groups = {("none", ""): "Baseline", ("clip", "1"): "Clip to 1", ("clip", "2"): "Clip to 2", ("division", ""): "Division"}
        words = [f"Method Rank Acc. AA CC ECE {head} Comp."]
        t = s[s["table"] == table]
        for (method, clip_to), name in groups.items():
            g = t[(t["method"] == method) & (t["clip_to"] == clip_to)]
            assert len(g) == 4
            for i, (_, r) in enumerate(g.iterrows()):
                cells = [r["acc"], r["autoattack"], r["cifar_c"], r["ece"], dash(r["clip_speedup"]), r["compression"]]
                words += ([name] if i == 0 else []) + [dash(r["rank"]), *cells]
        assert " ".join(words) in text, table
    for _, r in s[s["table"] == "3"].iterrows():
        lam = f"{float(r['lam']):.1e}".replace(".0e+0", "e").replace("e+0", "e")
        cells = [lam, r["acc"], r["cifar_c"], r["ece"], r["autoattack"], r["lipschitz"]]
        assert "| " + " | ".join(cells) + " |" in text, cells


@pytest.mark.skipif(not REFERENCE_CSV.is_file(), reason="no shared reference copy beside the project")
def test_the_shared_reference_rows_are_all_kept():
    ref = pd.read_csv(REFERENCE_CSV, dtype={"table": str})
    ours = pd.read_csv(PAPER_CSV, dtype={"table": str})
    key = ["source", "table", "dataset", "arch", "method", "clip_to", "rank"]
    ours = ours[(ours["lam"].isna() | (ours["table"] != "3")) & (ours["table"] != "offset-ablation")]  # both new
    merged = ref.merge(ours, on=key, how="left", suffixes=("", "_ours"), indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == len(ref)
    for col in ref.columns.drop(key):
        pd.testing.assert_series_equal(merged[col], merged[f"{col}_ours"], check_names=False)


def test_the_lambda_grid_sits_beside_our_lambda_sweep():
    """Our LipConvNet-5 SOC-TT trials at λ = 5e3 and 1e4 each get the paper's Tab. 3 row of that λ right
    after them, with its "Lip." in the normalised-input empirical Lipschitz column (its units); Tab. 1's ± shows as such."""
    base = dict(status="ok", dataset="cifar10", arch="lipconvnet-5", method="soc", clip_to=1.0, epochs=1, batch_size=8,
                lr=0.1, optimizer="sgd", schedule="multistep", clip_every=1, train_time_s=10.0, rank=256)  # fmt: skip
    rows = [
        {**base, "trial_id": "a", "lam": 5e3, "seed": 0, "clean_acc": 70.0, "emp_lip_max_normalized": 0.9, "emp_lip_max": 3.5},
        {**base, "trial_id": "b", "lam": 1e4, "seed": 0, "clean_acc": 71.0, "emp_lip_max_normalized": 0.8, "emp_lip_max": 3.1},
    ]
    trials = pd.DataFrame(rows).reindex(columns=TRIALS.names)
    (st,) = summary_tables(prepare_trials(trials), load_paper_results())
    assert len(st.paper) == 3 + 6  # Tab. 1 (full, 128, 256) and the six λ of Tab. 3
    display, classes = st.display()
    assert "Max. empirical Lipschitz ratio (normalised inputs)" in display.columns and "lam" in display.columns
    for lam, ours_acc, paper_acc, lip in (("5000", "70.00", "78.37", "0.93"), ("10000", "71.00", "77.17", "0.76")):
        (i,) = np.flatnonzero((display["lam"] == lam) & (display["source"] == "this run"))
        assert display.loc[i, "Accuracy (%)"] == ours_acc
        assert classes[i + 1] == "paper" and display.loc[i + 1, "lam"] == lam
        assert display.loc[i + 1, "Accuracy (%)"] == paper_acc
        assert display.loc[i + 1, "Max. empirical Lipschitz ratio (normalised inputs)"] == lip
    assert "78.30 ±\xa00.10" in display["Accuracy (%)"].tolist()  # Tab. 1, rank 256: mean ± std over runs
    numeric = st.numeric()
    assert {"emp_lip_max_normalized_mean", "clean_acc_std"} <= set(numeric.columns)
    assert numeric.loc[numeric["source"] == "Senderovich et al. 2022, table 3", "emp_lip_max_normalized_mean"].max() == 0.93


def test_the_empirical_lipschitz_histogram_marks_the_papers_maxima():
    """Tab. 3's "Lip." of LipConvNet-5 (six λ) as dashed vertical lines beside our histogram, named on hover."""
    from analysis import figures as F
    from analysis.paper import paper_rows_for

    trials = pd.DataFrame({"label": ["soc · TT r=256"], "method": ["soc"], "emp_lip_hist": [[0.8, 2.0, 2.8]],
                           "emp_lip_hist_normalized": [[0.2, 0.5, 0.7]]})  # fmt: skip
    paper = paper_rows_for(load_paper_results(), "cifar10", "lipconvnet-5")
    fig = F.emp_lip_histograms(trials, "t", {}, "n", paper=paper)
    (marks,) = [t for t in fig.fig.data if t.name == "maximum reported by the paper"]
    xs = sorted({x for x in marks.x if x is not None})
    assert xs == [0.58, 0.59, 0.6, 0.76, 0.79, 0.93]
    assert "Senderovich et al. 2022, table 3: soc-tt · TT r=256 · λ=5000, max 0.93" in marks.text
    assert "normalize" in fig.fig.layout.xaxis.title.text.lower()
    plain = F.emp_lip_histograms(trials, "t", {}, "n")
    assert [t.name for t in plain.fig.data] == ["soc · TT r=256 (max 0.7)"]
    # trials with pixel-unit ratios only: their histogram, in pixel units, and no paper line in other units
    pixel = F.emp_lip_histograms(trials.drop(columns="emp_lip_hist_normalized"), "t", {}, "n", paper=paper)
    assert [t.name for t in pixel.fig.data] == ["soc · TT r=256 (max 2.8)"] and "pixel" in pixel.fig.layout.xaxis.title.text


AOL_SEED = SEED.with_name("002_34b43bd8dda80863.txt")


@pytest.mark.skipif(not AOL_SEED.is_file(), reason="the AOL README is not beside the project")
def test_the_aol_offset_ablation_reads_as_in_its_readme():
    """The five rows of the AOL README's loss-offset ablation (AOL-Small, CIFAR-10), each with its offset."""
    text = AOL_SEED.read_text()
    rows = load_paper_results()
    rows = rows[rows["table"] == "offset-ablation"].sort_values("loss_offset")
    names = {1 / 16: "$\\sqrt{2}$/16", 1 / 4: "$\\sqrt{2}$/4", 1: "$\\sqrt{2}$", 4: "4 $\\sqrt{2}$", 16: "16 $\\sqrt{2}$"}
    assert len(rows) == 5 and set(rows["arch"]) == {"aol-small"} and set(rows["dataset"]) == {"cifar10"}
    for (factor, name), r in zip(names.items(), rows.itertuples()):
        assert r.loss_offset == pytest.approx(factor * np.sqrt(2), rel=1e-15)
        cells = [f"{v:.1f}%" for v in (r.clean_acc, r.cra_36, r.cra_72, r.cra_108, r.cra_255)]
        assert f"{name} | " + " | ".join(cells) + " |" in text


def test_each_paper_column_is_compared_with_ours_in_its_units():
    """The paper's AA column goes to the trials column of the radius its code attacks at (0.25 px, recorded in
    paper_conventions.csv), and Tab. 3's "Lip." to the normalised-input ratio, not the pixel one."""
    from analysis.conventions import load_paper_conventions
    from analysis.paper import RENAME
    from svconv.metrics.autoattack import AUTOATTACK_RADII

    conv = load_paper_conventions()
    radii = {float(v) for v in conv["autoattack_px"] if v}
    assert radii == {0.25}
    (column,) = [col for col, eps in AUTOATTACK_RADII.values() if eps == 0.25]
    assert RENAME["autoattack"] == column == "autoattack_025"
    assert RENAME["lipschitz"] == "emp_lip_max_normalized"
    assert {"autoattack_025", "emp_lip_max_normalized", "emp_lip_hist_normalized"} <= set(TRIALS.names)
    paper = load_paper_results()
    assert paper.loc[paper["table"] == "3", "emp_lip_max_normalized"].max() <= 1.0  # their 1-Lipschitz nets
