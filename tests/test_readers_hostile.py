"""Readers keep every good row among hostile ones (issue #20): accepted + rejected = rows in, always."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.data import files as io
from workbench.data.pairs import PairError

TEXT = st.lists(st.sampled_from(list("abc xyz😀é\r\n\t[]{},.\"'") + ["[2, 3, 5]", "\\ud83d", "Human:"]),
                min_size=1, max_size=12).map("".join).filter(lambda s: s.strip())
HOSTILE = ("lone_surrogate", "wrong_type", "missing_key", "truncated", "identical", "empty", "not_an_object")


def _hostile(kind: str, i: int) -> str:
    good = {"prompt": f"question {i}", "chosen": f"answer {i}", "rejected": f"other {i}"}
    line = {
        "lone_surrogate": json.dumps({**good, "chosen": f"smile \ud83d {i}"}),  # legal JSON, no UTF-8 encoding
        "wrong_type": json.dumps({**good, "chosen": 5}),
        "missing_key": json.dumps({"prompt": good["prompt"], "chosen": good["chosen"]}),
        "truncated": json.dumps(good)[:25],
        "identical": json.dumps({**good, "rejected": good["chosen"]}),
        "empty": json.dumps({**good, "rejected": "   "}),
        "not_an_object": json.dumps([1, 2, 3]),
    }[kind]
    return line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(valid=st.lists(st.tuples(TEXT, TEXT, TEXT), min_size=1, max_size=12),
       hostile=st.lists(st.sampled_from(HOSTILE), max_size=12), bom=st.booleans(), crlf=st.booleans(),
       order=st.randoms(use_true_random=False), gz=st.booleans())
def test_every_valid_row_survives_and_every_hostile_row_is_rejected(tmp_path_factory, valid, hostile, bom, crlf, order, gz):
    rows = [(json.dumps({"prompt": f"{p} #{i}", "chosen": f"{c} <c{i}>", "rejected": f"{r} <r{i}>"}), True)
            for i, (p, c, r) in enumerate(valid)]
    rows += [(_hostile(kind, 1000 + i), False) for i, kind in enumerate(hostile)]
    order.shuffle(rows)
    text = ("\ufeff" if bom else "") + ("\r\n" if crlf else "\n").join(line for line, _ in rows) + "\n"
    path = tmp_path_factory.mktemp("h") / ("mixed.jsonl.gz" if gz else "mixed.jsonl")
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    pairs, report = io.read_pairs(path, strict=False, rejects_path=path.with_name("rejects.jsonl"))
    assert report.n_rows == len(rows) and report.n_ok + report.n_rejected == len(rows)
    kept = {(p[0]["content"], c, r) for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"])}
    wanted = {(json.loads(line)["prompt"], json.loads(line)["chosen"], json.loads(line)["rejected"]) for line, ok in rows if ok}
    assert kept == wanted and report.n_rejected == len(hostile)
    io.write_pairs(pairs, path.with_name("out.parquet"))  # every kept row can be written
    rejects = [json.loads(x) for x in path.with_name("rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rejects) == len(hostile) and all(r["row"] >= 1 and r["field"] and r["reason"] for r in rejects)


def test_duplicates_and_reversed_duplicates_are_counted_and_dropped(tmp_path):
    a = {"prompt": "q", "chosen": "good", "rejected": "bad"}
    rows = [a, a, a, {"prompt": "q", "chosen": "bad", "rejected": "good"}] + [
        {"prompt": f"q{i}", "chosen": "x", "rejected": "y"} for i in range(5)]
    path = tmp_path / "dups.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    pairs, report = io.read_pairs(path, strict=False)
    assert len(pairs) == 6 and pairs["pair_id"].is_unique and report.n_rejected == 3
    kinds = [r["reason"].split(" (")[0] for r in report.rejects]
    assert kinds.count("duplicate: the same pair as an earlier row") == 2
    assert sum(k.startswith("duplicate with the opposite label") for k in kinds) == 1


def test_csv_text_stays_text_and_a_bom_header_is_read(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text("\ufeffprompt,chosen,rejected\r\nPrimes under 6?,\"[2, 3, 5]\",\"[2, 4]\"\r\nEmpty list?,[],none\r\n"
                    "Conversation,\"[{\"\"role\"\": \"\"user\"\", \"\"content\"\": \"\"hi\"\"}]\",plain\r\n", encoding="utf-8")
    pairs, report = io.read_pairs(path, strict=False)
    assert report.fmt == "prompt_strings" and report.n_rows == 3
    assert pairs["chosen"].tolist()[:2] == ["[2, 3, 5]", "[]"]  # answers, not lists
    assert report.n_rejected == 1 and report.rejects[0]["field"] == "chosen"  # a message list is not a string answer


def test_a_bad_first_row_does_not_decide_the_format(tmp_path):
    path = tmp_path / "first_bad.jsonl"
    path.write_text("\n".join([json.dumps({"oops": 1})] + [json.dumps({"prompt": f"q{i}", "chosen": "a", "rejected": "b"})
                                                         for i in range(4)]))
    pairs, report = io.read_pairs(path, strict=False)
    assert report.fmt == "prompt_strings" and len(pairs) == 4 and report.rejects[0]["row"] == 1


def test_hh_dialogue_with_crlf_is_read(tmp_path, hh_record):
    rec = {k: v.replace("\n", "\r\n") for k, v in hh_record.items()}
    path = tmp_path / "crlf.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    for fmt in ("auto", "hh"):
        pairs, report = io.read_pairs(path, fmt=fmt)
        assert report.fmt == "hh" and len(pairs) == 1 and pairs.loc[0, "chosen"] == "Yes, 2+2 = 4."


def test_real_hh_file_with_one_corrupted_row_keeps_every_other_row(tmp_path, shared_data):
    src = shared_data / "hh_rlhf" / "helpful-base" / "test.jsonl.gz"
    base, base_report = io.read_pairs(src, strict=False)
    lines = gzip.decompress(src.read_bytes()).decode("utf-8").splitlines()
    assert 301 in set(base["source_row"])  # row 301 is a good row of the real file (row 121 is not)
    rec = json.loads(lines[300])
    rec["chosen"] = rec["chosen"] + " \ud83d"  # a lone surrogate escape, as scraped chat data has
    lines[300] = json.dumps(rec)
    bad = tmp_path / "helpful-base" / "test.jsonl.gz"
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    pairs, report = io.read_pairs(bad, strict=False)
    assert report.n_rows == base_report.n_rows == 2354 and len(pairs) == len(base) - 1
    assert report.n_rejected == base_report.n_rejected + 1
    new = [r for r in report.rejects if r["row"] == 301][0]
    assert new["field"] == "chosen" and "lone surrogate" in new["reason"] and new["excerpt"].startswith('{"chosen": ')
    io.write_pairs(pairs, tmp_path / "ok.parquet")
    from workbench.scale.shards import shard_pair_file

    with pytest.warns(UserWarning, match="rows rejected"):
        shards = shard_pair_file(bad, tmp_path / "shards", shard_size=1000)
    assert sum(len(io.load_pairs(s)) for s in shards) == len(pairs)


def test_outputs_follow_the_umask_and_read_only_folders_are_named(tmp_path):
    old = os.umask(0o022)
    try:
        path = io.write_json({"a": 1}, tmp_path / "run" / "x.json")
        assert oct(path.stat().st_mode & 0o777) == "0o644"
    finally:
        os.umask(old)
    if not Path("/sys").exists() or os.access("/sys", os.W_OK) and Path("/sys").stat().st_mode & 0o200:
        pytest.skip("needs a read-only folder (/sys is one on Linux)")
    from workbench.curation.review import ReviewStore

    with pytest.raises(PermissionError, match=r"/sys/review.sqlite: cannot open this store for writing"):
        ReviewStore("/sys/review.sqlite")
    with pytest.raises(PermissionError, match=r"/sys/x.json: cannot write here"):
        io.write_json({"a": 1}, "/sys/x.json")


# ---- issue #29: inputs that still got through

def _prompt_rows(n, start=0):
    return [{"prompt": f"question {i}", "chosen": f"answer {i}", "rejected": f"other {i}"} for i in range(start, start + n)]


def test_csv_cell_over_the_default_field_limit_keeps_every_row(tmp_path):
    import pandas as pd

    rows = _prompt_rows(3)
    rows[1]["chosen"] = "long answer " * 20_000  # 240 KB: over the csv module's default 128 KiB field limit
    path = tmp_path / "long.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    pairs, report = io.read_pairs(path)
    assert report.n_ok == 3 and pairs["chosen"].str.len().max() == len(rows[1]["chosen"])


def test_a_deeply_nested_row_is_rejected_by_name_and_the_rest_kept(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    lines = [json.dumps(r) for r in _prompt_rows(3)]
    path = tmp_path / "deep.jsonl"
    path.write_text("\n".join([lines[0], '{"prompt": "q", "chosen": ' + deep + ', "rejected": "b"}', *lines[1:]]) + "\n")
    pairs, report = io.read_pairs(path, strict=False)
    assert report.n_ok == 3 and [(r["row"], r["field"], r["kind"]) for r in report.rejects] == [(2, "<record>", "nested too deeply")]
    with pytest.raises(PairError, match=r"deep.jsonl: row 2: field '<record>': nested too deeply"):
        io.read_pairs(path)
    array = tmp_path / "deep.json"  # a JSON array: the deep element is rejected, its neighbours kept
    array.write_text("[" + ",".join([lines[0], deep, *lines[1:]]) + "]")
    pairs, report = io.read_pairs(array, strict=False)
    assert report.n_ok == 3 and [(r["row"], r["kind"]) for r in report.rejects] == [(2, "nested too deeply")]


@pytest.mark.parametrize("name", ["cut.jsonl.gz", "cut.json.gz", "cut.csv.gz"])
def test_a_truncated_gzip_keeps_the_complete_rows_and_names_the_row_where_it_ends(tmp_path, name):
    import pandas as pd

    rows = _prompt_rows(20_000)
    frame = pd.DataFrame(rows)
    text = {"cut.jsonl.gz": "".join(json.dumps(r) + "\n" for r in rows), "cut.json.gz": json.dumps(rows),
            "cut.csv.gz": frame.to_csv(index=False)}[name]
    whole = gzip.compress(text.encode(), compresslevel=1)
    path = tmp_path / name
    path.write_bytes(whole[: len(whole) // 2])  # an interrupted download
    pairs, report = io.read_pairs(path, strict=False)
    assert 5_000 < report.n_ok < 15_000 and report.n_ok == len(pairs)
    assert pairs["chosen"].tolist() == frame["chosen"].tolist()[: report.n_ok]  # every complete row, in order
    (cut,) = report.rejects
    assert cut["row"] == report.n_ok + 1 and cut["kind"] == "truncated" and "remove the .gz suffix" not in cut["reason"]
    with pytest.raises(PairError, match=rf"{name}: row {report.n_ok + 1}: field '<record>': truncated"):
        io.read_pairs(path)


def test_reject_messages_say_what_they_mean(tmp_path):
    path = tmp_path / "odd.jsonl"
    many_keys = {**{f"extra_{i:02d}": i for i in range(40)}, "prompt": "q2", "chosen": "a"}
    path.write_text("\n".join([
        json.dumps({"prompt": "q1", "chosen": None, "rejected": "b"}),  # null, not missing
        json.dumps(many_keys),  # missing, with a long key list
        json.dumps({"prompt": "smile \ud83d", "chosen": "a", "rejected": "b"}),  # a string prompt is 'prompt'
        '{"prompt": "tab\there", "chosen": "a", "rejected": "b"}',  # a raw control character
        json.dumps({"prompt": "q5", "chosen": "a", "rejected": "b"}),
    ]) + "\n")
    _, report = io.read_pairs(path, strict=False)
    by_row = {r["row"]: r for r in report.rejects}
    assert by_row[1]["field"] == "chosen" and by_row[1]["reason"].startswith("null") and "missing" not in by_row[1]["reason"]
    assert by_row[2]["field"] == "rejected" and by_row[2]["kind"] == "missing"
    assert by_row[2]["reason"].count("(") == by_row[2]["reason"].count(")") and "more" in by_row[2]["reason"]
    assert by_row[3]["field"] == "prompt" and "lone surrogate" in by_row[3]["reason"]
    assert "at at" not in by_row[4]["reason"] and by_row[4]["kind"] == "invalid JSON"
    assert all(k.count("(") == k.count(")") for k in report.reasons())
    for name, text in (("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("empty.csv", ""), ("header.csv", "prompt,chosen,rejected\n"),
                       ("empty.json", ""), ("empty_array.json", "[]")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=rf"{name}: .*no rows.*empty") as err:
            io.read_pairs(tmp_path / name)
        assert "keys None" not in str(err.value) and "first 0 rows" not in str(err.value)


@pytest.mark.parametrize("name", ["trailer.jsonl.gz", "trailer.json.gz", "trailer.csv.gz"])
def test_a_gzip_cut_in_its_trailer_keeps_every_row_and_is_still_reported(tmp_path, name):
    """All the data decompresses, only the checksum is gone: every row is kept, the damage is reported after them."""
    rows = [json.dumps(r) for r in _prompt_rows(3)]
    text = {"trailer.jsonl.gz": "\n".join(rows) + "\n",
            "trailer.json.gz": "[\n" + ",\n".join([*rows, '{"prompt": "q", "chosen": }']) + "\n]\n",  # + a broken element
            "trailer.csv.gz": "prompt,chosen,rejected\n" + "".join(f"question {i},answer {i},other {i}\n" for i in range(3))}[name]
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode())[:-4])
    pairs, report = io.read_pairs(path, strict=False)
    truncated = [r["row"] for r in report.rejects if r["kind"] == "truncated"]
    assert len(pairs) == 3 and truncated == [report.n_rows] and report.n_rows == (5 if name == "trailer.json.gz" else 4)
