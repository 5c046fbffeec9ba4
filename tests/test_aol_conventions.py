"""Each paper's input preprocessing and certificate (analysis/data/paper_conventions.csv) beside ours: every
paper table has its convention, our trials record theirs, and the summary tables show both and say when they
differ."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.conventions import COLUMNS, convention_notes, join_conventions, load_paper_conventions
from analysis.paper import load_paper_results
from analysis.tables import prepare_trials, summary_tables
from svconv.models import PREPROCESSING, arch_preprocessing
from svconv.results.schema import TRIALS


def test_every_paper_table_has_a_known_convention():
    conv = load_paper_conventions()
    assert not conv.duplicated(["source", "table"]).any()
    assert set(conv["preprocessing"]) <= set(PREPROCESSING)
    paper = load_paper_results()
    assert paper["preprocessing"].notna().all() and paper["certificate"].notna().all()
    # the family's convention in svconv is the one its paper used, for every architecture the papers report
    for arch, theirs in paper.groupby("arch")["preprocessing"]:
        if arch.startswith(("aol-", "lipconvnet-")):
            assert set(theirs) == {arch_preprocessing(arch)}, arch
    aol = paper[paper["source"] == "prach2022_aol"]
    assert set(aol["preprocessing"]) == {"none"} and aol["certificate"].str.startswith("L = 1:").all()


def test_join_keeps_rows_and_leaves_unknown_tables_empty():
    paper = pd.DataFrame({"source": ["prach2022_aol", "nobody"], "table": ["readme", "1"], "clean_acc": [70.3, 1.0]})
    joined = join_conventions(paper)
    assert list(joined["clean_acc"]) == [70.3, 1.0] and joined["preprocessing"].iloc[0] == "none"
    assert pd.isna(joined["preprocessing"].iloc[1])
    assert list(join_conventions(paper.iloc[:0]).columns)[-8:] == list(COLUMNS[2:])


@pytest.mark.parametrize("ours,warned", [("standardize", True), ("none", False)])
def test_summary_table_shows_both_conventions_and_warns_when_they_differ(ours, warned):
    base = dict(status="ok", dataset="cifar10", arch="aol-small", method="aol", clip_to=1.0, lam=0.0, epochs=1,
                batch_size=8, lr=0.1, optimizer="sgd", schedule="cosine", clip_every=1, train_time_s=10.0)  # fmt: skip
    rows = [{**base, "trial_id": str(i), "seed": i, "clean_acc": 60.0 + i, "cra_36": 50.0, "preprocessing": ours} for i in range(2)]
    trials = pd.DataFrame(rows).reindex(columns=TRIALS.names)
    (st,) = summary_tables(prepare_trials(trials), load_paper_results())
    display, classes = st.display()
    shown = dict(zip(classes, display["preprocessing"]))
    assert shown == {"": ours, "paper": "none"}
    notes = convention_notes(st.ours["preprocessing"], st.paper)
    assert any("inputs images / 255 in [0, 1]" in n and "L = 1" in n for n in notes)
    assert any("not directly comparable" in n for n in notes) == warned
