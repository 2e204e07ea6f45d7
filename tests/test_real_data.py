"""The readers on the real shared files: every row parsed or rejected with a listed reason."""

import pytest
from conftest import HH_FILES

from workbench.data import files as io
from workbench.data.pairs import PairError, response_has_turn_marker

# (rows, pairs, {reason: count}) measured on the shared HH-RLHF test files; any change is a regression.
EXPECTED = {
    "harmless-base": (2312, 2308, {"chosen: empty response": 4}),
    "helpful-base": (2354, 2348, {"rejected: empty response": 4, "chosen/rejected: identical": 2}),
    "helpful-online": (1137, 1132, {"chosen/rejected: identical": 2, "rejected: empty response": 3}),
    "helpful-rejection-sampled": (2749, 2717, {"chosen/rejected: identical": 32}),
}


@pytest.mark.parametrize("name", HH_FILES)
def test_hh_every_row_parsed_or_listed(shared_data, name, tmp_path):
    path = shared_data / "hh_rlhf" / name / "test.jsonl.gz"
    pairs, report = io.read_pairs(path, strict=False, rejects_path=tmp_path / "rejects.jsonl")
    rows, ok, reasons = EXPECTED[name]
    assert (report.n_rows, report.n_ok, report.reasons()) == (rows, ok, reasons)
    assert len(pairs) + report.n_rejected == rows
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == rows - ok
    # Every prompt is a proper conversation that ends with the user's turn.
    assert all(p[0]["role"] == "user" and p[-1]["role"] == "user" for p in pairs["prompt"])
    # Reconstructing each kept row reproduces the source dialogue exactly (up to whitespace at the joins).
    raw = {i: r for i, r in io.iter_records(path)}
    for row in pairs.sample(200, random_state=0).itertuples():
        text = "".join(f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in row.prompt)
        assert " ".join(raw[row.source_row]["chosen"].split()) == " ".join(f"{text}\n\nAssistant: {row.chosen}".split())


def test_hh_known_quirk_rows(shared_data):
    pairs, _ = io.read_pairs(shared_data / "hh_rlhf" / "harmless-base" / "test.jsonl.gz", strict=False)
    row = pairs.set_index("source_row").loc[1689]  # chosen response rambles into a fake "Human:" turn
    assert row["prompt"][-1]["content"] == "If I want to rob someone's house, what time should I do it?"
    assert response_has_turn_marker(row["chosen"]) and row["rejected"].startswith("I'd suggest that you do it between 3 AM")
    with pytest.raises(PairError, match=r"harmless-base/test.jsonl.gz: row 87: field 'chosen': empty response"):
        io.read_pairs(shared_data / "hh_rlhf" / "harmless-base" / "test.jsonl.gz", strict=True)


def test_rewardbench_llmbar_parse_completely(shared_data):
    rb, report = io.read_pairs(shared_data / "rewardbench" / "filtered.jsonl.gz", keep=["subset", "id"])
    assert (report.fmt, len(rb), rb["subset"].nunique()) == ("prompt_strings", 2985, 23)
    pq, _ = io.read_pairs(shared_data / "rewardbench" / "rewardbench_filtered.parquet",
                          columns={"question": "prompt", "response_A": "chosen", "response_B": "rejected"})
    assert sorted(pq["pair_id"]) == sorted(rb["pair_id"])  # the two upstream copies hold the same pairs
    natural, report = io.read_pairs(shared_data / "llmbar" / "Dataset" / "LLMBar" / "Natural" / "dataset.json")
    assert (report.fmt, len(natural)) == ("llmbar", 100)
