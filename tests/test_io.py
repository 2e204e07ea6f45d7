"""Readers for every file type (good and bad input), writers, run folders and report items."""

import gzip
import json

import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.data import files as io
from workbench.data.pairs import PairError
from workbench.runs.folder import start_run

GOOD = [
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
    {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
]


def _jsonl(records):
    return "\n".join(json.dumps(r) for r in records) + "\n"


@pytest.mark.parametrize("name", ["p.jsonl", "p.jsonl.gz", "p.json", "p.json.gz", "p.csv", "p.csv.gz", "p.tsv", "p.parquet"])
def test_every_file_type_reads_the_same_pairs(tmp_path, name):
    path = tmp_path / name
    kind = io.file_format(path)
    if kind == ".parquet":
        pd.DataFrame(GOOD).to_parquet(path)
    else:
        text = {".jsonl": _jsonl(GOOD), ".json": json.dumps(GOOD),
                ".csv": pd.DataFrame(GOOD).to_csv(index=False), ".tsv": pd.DataFrame(GOOD).to_csv(index=False, sep="\t")}[kind]
        data = text.encode()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    pairs, report = io.read_pairs(path)
    assert list(pairs["chosen"]) == ["Paris.", "4"] and list(pairs["source_row"]) == [1, 2]
    assert pairs["prompt"].iloc[0] == [{"role": "user", "content": "Capital of France?"}]
    assert report.n_ok == 2 and report.n_rejected == 0 and pairs["source"].iloc[0] == "p"


def test_csv_with_json_message_lists(tmp_path):
    conv = {"chosen": json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]),
            "rejected": json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go away"}])}
    pd.DataFrame([conv]).to_csv(tmp_path / "c.csv", index=False)
    pairs, _ = io.read_pairs(tmp_path / "c.csv")
    assert pairs.iloc[0]["rejected"] == "go away"


# ---- bad input, one case per reader; each message names file, row and field

def test_jsonl_bad_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(_jsonl(GOOD[:1]) + "{not json}\n")
    with pytest.raises(PairError, match=r"bad.jsonl: row 2: field '<record>': invalid JSON"):
        io.read_pairs(path)


def test_jsonl_undecodable_bytes_name_the_field(tmp_path):
    path = tmp_path / "latin1.jsonl.gz"
    raw = _jsonl(GOOD[:1]).encode() + '{"prompt": "q", "chosen": "caf\xe9", "rejected": "b"}\n'.encode("latin-1")
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(PairError, match=r"latin1.jsonl.gz: row 2: field 'chosen': undecodable bytes"):
        io.read_pairs(path)


def test_json_missing_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([GOOD[0], {"prompt": "q", "chosen": "a"}]))
    with pytest.raises(PairError, match=r"bad.json: row 2: field 'rejected': missing"):
        io.read_pairs(path)


def test_json_not_an_array(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('"just a string"')
    with pytest.raises(ValueError, match="expected a JSON array"):
        io.read_pairs(path)


def test_csv_extra_cells_and_empty_response(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,chosen,rejected\nq,a,b\nq2,a,b,EXTRA\nq3,,b\n")
    with pytest.raises(PairError, match=r"bad.csv: row 2: field '<record>': 1 more cells than header"):
        io.read_pairs(path)
    pairs, report = io.read_pairs(path, strict=False)
    assert len(pairs) == 1 and [(r["row"], r["field"]) for r in report.rejects] == [(2, "<record>"), (3, "chosen")]


def test_parquet_non_string_field(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame([{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q2", "chosen": "a", "rejected": None}]).to_parquet(path)
    with pytest.raises(PairError, match=r"bad.parquet: row 2: field 'rejected': null"):
        io.read_pairs(path)


def test_not_gzip_and_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "x.jsonl.gz").write_text("plain text")
    with pytest.raises(ValueError, match="not a valid gzip file"):
        io.read_pairs(tmp_path / "x.jsonl.gz")
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(ValueError, match="unsupported file type"):
        io.read_pairs(tmp_path / "x.xml")
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.read_pairs(tmp_path / "nope.jsonl")


def test_hub_id_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="could not be loaded from the Hugging Face Hub"):
        io.read_pairs("someorg/some-dataset-that-is-not-here")


def test_rejects_file_lists_every_bad_row(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(_jsonl([GOOD[0], {"prompt": "q", "chosen": "x", "rejected": "x"}, GOOD[1]]))
    pairs, report = io.read_pairs(path, strict=False, rejects_path=tmp_path / "rejects.jsonl")
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert len(pairs) == 2 and rejects == [{"where": str(path), "row": 2, "field": "chosen/rejected", "kind": "identical",
                                            "reason": "identical: chosen response equals rejected response",
                                            "excerpt": '{"prompt": "q", "chosen": "x", "rejected": "x"}'}]


def test_rename_columns(tmp_path):
    path = tmp_path / "rb.parquet"
    pd.DataFrame([{"question": "q", "response_A": "good", "response_B": "bad", "domain": "Chat"}]).to_parquet(path)
    pairs, _ = io.read_pairs(path, columns={"question": "prompt", "response_A": "chosen", "response_B": "rejected"}, keep=["domain"])
    assert pairs.iloc[0][["chosen", "rejected", "domain"]].tolist() == ["good", "bad", "Chat"]


# ---- writers

@pytest.mark.parametrize("name", ["out.parquet", "out.jsonl", "out.jsonl.gz"])
def test_write_load_round_trip(tmp_path, name):
    path = tmp_path / "in.jsonl"
    path.write_text(_jsonl(GOOD))
    pairs, _ = io.read_pairs(path, keep=[])
    io.write_pairs(pairs, tmp_path / name)
    back = io.load_pairs(tmp_path / name)
    assert back["pair_id"].tolist() == pairs["pair_id"].tolist()
    assert back["prompt"].tolist() == pairs["prompt"].tolist()
    assert back["chosen"].tolist() == pairs["chosen"].tolist()


def test_parquet_is_huggingface_datasets_compatible(tmp_path):
    import datasets

    path = tmp_path / "in.jsonl"
    path.write_text(_jsonl(GOOD))
    pairs, _ = io.read_pairs(path)
    io.write_pairs(pairs, tmp_path / "pairs.parquet")
    ds = datasets.Dataset.from_parquet(str(tmp_path / "pairs.parquet"))
    assert ds.num_rows == 2 and ds[0]["prompt"] == [{"role": "user", "content": "Capital of France?"}]
    assert ds.features["prompt"].feature["role"].dtype == "string"


def test_shared_data_dir_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(io.DATA_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"\$WORKBENCH_DATA_DIR=.*nowhere is not a folder"):
        io.shared_data_dir()
    monkeypatch.setenv(io.DATA_DIR_ENV, str(tmp_path))  # a folder without the data: the lookup goes on
    monkeypatch.setattr(io, "REPO_ROOT", tmp_path / "clone")
    monkeypatch.setenv(io.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"Shared data not found .*workbench data fetch.* set \$WORKBENCH_DATA_DIR"):
        io.shared_data_dir()


def test_run_items_replace_on_resave(tmp_path):
    run = start_run(tmp_path / "r", {"a": 1}, step="s1")
    assert json.loads((run.path / "config_s1.json").read_text())["config"] == {"a": 1}
    fig = go.Figure(go.Bar(x=[1], y=[2]))
    run.save_figure(fig, "f", step="s1")
    run.save_table(pd.DataFrame({"x": [1]}), "t", step="s1")
    run.save_figure(fig, "f", title="again", step="s1")
    items = run.report_items()
    assert [(i["name"], i["title"]) for i in items] == [("f", "again"), ("t", "t")]
    assert (run.path / "figures" / "f.html").exists() and (run.path / "figures" / "plotly.min.js").exists()


def test_jsonl_lines_are_split_on_newlines_only_and_files_are_streamed(tmp_path):
    """JSON allows a raw U+2028 inside a string; it must not end the line (str.splitlines would split it)."""
    from workbench.data.files import iter_records

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "a\u2028b", "chosen": "c", "rejected": "d"}, ensure_ascii=False) + "\n\n"
                    + json.dumps({"prompt": "e", "chosen": "f", "rejected": "g"}) + "\n", encoding="utf-8")
    records = iter_records(path)
    assert next(records) == (1, {"prompt": "a\u2028b", "chosen": "c", "rejected": "d"})  # a generator: read as consumed
    assert [row for row, _ in records] == [3]
    pq_path = tmp_path / "p.parquet"
    pd.DataFrame({"prompt": [f"q{i}" for i in range(20_000)], "chosen": "x", "rejected": "y"}).to_parquet(pq_path)
    rows = list(iter_records(pq_path))
    assert len(rows) == 20_000 and rows[-1] == (20_000, {"prompt": "q19999", "chosen": "x", "rejected": "y"})
