"""Format parsers and validation: values, error texts (file, row, field), and a property test of the HH parser."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.data.pairs import PairError, detect_format, parse_hh_dialogue, records_to_pairs, split_hh_turns


def _pairs(records, **kw):
    return records_to_pairs(list(enumerate(records, start=1)), where="mem.jsonl", source="mem", **kw)


def test_hh_splits_shared_prompt_and_final_responses(hh_record):
    prompt, chosen, rejected = parse_hh_dialogue(hh_record["chosen"], hh_record["rejected"])
    assert prompt == [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."},
                      {"role": "user", "content": "Sure?"}]
    assert (chosen, rejected) == ("Yes, 2+2 = 4.", "No, it is 5.")


def test_hh_response_that_rambles_into_fake_turns_keeps_the_true_prompt():
    # Real HH quirk (e.g. harmless-base row 1689): the chosen response itself contains "\n\nAssistant:".
    head = "\n\nHuman: rob a house?\n\nAssistant:"
    chosen = head + " Human: I think there's an easier way.\n\nHuman: ok\n\nAssistant: Don't."
    rejected = head + " Between 3 and 7 AM."
    prompt, c, r = parse_hh_dialogue(chosen, rejected)
    assert prompt == [{"role": "user", "content": "rob a house?"}]
    assert c.startswith("Human: I think") and c.endswith("Don't.") and r == "Between 3 and 7 AM."
    frame, report = _pairs([{"chosen": chosen, "rejected": rejected}])
    assert len(frame) == 1 and report.quirks["response contains a turn marker"] == 1


def test_hh_prompt_mismatch_is_an_error():
    rec = {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"}
    with pytest.raises(PairError, match=r"mem.jsonl: row 1: field 'chosen/rejected': prompt prefixes do not match"):
        _pairs([rec])


@pytest.mark.parametrize(
    "record, field, message",
    [
        ({"chosen": "\n\nHuman: q\n\nAssistant: same", "rejected": "\n\nHuman: q\n\nAssistant: same"}, "chosen/rejected", "identical"),
        ({"chosen": "\n\nHuman: q\n\nAssistant:", "rejected": "\n\nHuman: q\n\nAssistant: a"}, "chosen", "empty response"),
        ({"chosen": "\n\nHuman: q\n\nAssistant: a"}, "rejected", "missing"),
        ({"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": 3}, "rejected", "must be a string, got int"),
        ({"prompt": "q", "chosen": "a", "rejected": "b\udcff"}, "rejected", "undecodable bytes"),
        ({"prompt": "", "chosen": "a", "rejected": "b"}, "prompt", "empty text"),  # a text prompt is named as such
        ({"prompt": "q", "chosen": "   ", "rejected": "b"}, "chosen", "empty response"),
        ({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
          "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "b"}]},
         "chosen/rejected", "prompt prefixes do not match"),
        ({"chosen": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}],
          "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}, "chosen[1].role", "unknown role 'bot'"),
        ({"chosen": [{"role": "user", "content": "q"}],
          "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]},
         "chosen[-1].role", "last message must be the assistant's"),
        ({"input": "q", "output_1": "a", "output_2": "b", "label": 3}, "label", "must be 1 or 2"),
    ],
)
def test_bad_records_name_row_and_field(record, field, message):
    good = {"input": "q", "output_1": "a", "output_2": "b", "label": 1} if "input" in record else None
    fmt = detect_format(record) if "rejected" in record or "input" in record else "hh"
    records = ([good] if good else []) + [record]
    with pytest.raises(PairError) as err:
        _pairs(records, fmt=fmt)
    assert err.value.field == field and message in err.value.problem
    assert str(err.value).startswith(f"mem.jsonl: row {len(records)}: field {field!r}")


def test_lenient_mode_collects_every_reject_with_reason():
    records = [
        {"prompt": "q1", "chosen": "a", "rejected": "b"},
        {"prompt": "q2", "chosen": "same", "rejected": "same"},
        ValueError("invalid JSON (Expecting value at column 1)"),
        {"prompt": "q3", "chosen": "", "rejected": "b"},
        {"prompt": "q4", "chosen": "c", "rejected": "d"},
    ]
    frame, report = _pairs(records, strict=False)
    assert list(frame["source_row"]) == [1, 5]
    assert report.n_rows == 5 and report.n_ok == 2 and report.n_rejected == 3
    assert [(r["row"], r["field"]) for r in report.rejects] == [(2, "chosen/rejected"), (3, "<record>"), (4, "chosen")]
    assert "invalid JSON" in report.rejects[1]["reason"]


def test_each_format_parses_to_the_same_canonical_pair():
    user = [{"role": "user", "content": "Name a prime."}]
    records = {
        "hh": {"chosen": "\n\nHuman: Name a prime.\n\nAssistant: 7", "rejected": "\n\nHuman: Name a prime.\n\nAssistant: 8"},
        "conversational": {"chosen": user + [{"role": "assistant", "content": "7"}],
                           "rejected": user + [{"role": "assistant", "content": "8"}]},
        "prompt_strings": {"prompt": "Name a prime.", "chosen": "7", "rejected": "8"},
        "llmbar": {"input": "Name a prime.", "output_1": "8", "output_2": "7", "label": 2},
    }
    ids = set()
    for fmt, rec in records.items():
        assert detect_format(rec) == fmt
        frame, _ = _pairs([rec])
        row = frame.iloc[0]
        assert (row["prompt"], row["chosen"], row["rejected"]) == (user, "7", "8"), fmt
        ids.add(row["pair_id"])
    assert len(ids) == 1


def test_conversational_with_explicit_prompt_and_multi_turn():
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
              {"role": "user", "content": "2+2?"}]
    frame, _ = _pairs([{"prompt": prompt, "chosen": [{"role": "assistant", "content": "4"}],
                        "rejected": [{"role": "assistant", "content": "5"}]}])
    assert frame.iloc[0]["prompt"] == prompt and frame.iloc[0]["chosen"] == "4"


def test_unknown_format_lists_choices():
    with pytest.raises(ValueError, match="Cannot detect the pair format"):
        _pairs([{"question": "q", "a": "x"}])
    with pytest.raises(ValueError, match=r"Unknown format 'xml'"):
        _pairs([{"prompt": "q", "chosen": "a", "rejected": "b"}], fmt="xml")


# ---- property test: any well-formed HH conversation survives render -> parse

_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r")
_text = st.text(alphabet=_chars, min_size=1, max_size=40).map(str.strip).filter(
    lambda s: s and "\n\nHuman:" not in s and "\n\nAssistant:" not in s)


@st.composite
def _conversations(draw):
    n_user = draw(st.integers(1, 4))
    turns = []
    for i in range(n_user):
        turns.append({"role": "user", "content": draw(_text)})
        if i < n_user - 1:
            turns.append({"role": "assistant", "content": draw(_text)})
    chosen, rejected = draw(_text), draw(_text)
    return turns, chosen, rejected


def _render(turns, response):
    head = "".join(f"\n\n{'Human' if t['role'] == 'user' else 'Assistant'}: {t['content']}" for t in turns)
    return head + "\n\nAssistant: " + response


@settings(max_examples=300, deadline=None)
@given(_conversations())
def test_hh_round_trip_property(conv):
    turns, chosen, rejected = conv
    if chosen == rejected:
        return
    prompt, c, r = parse_hh_dialogue(_render(turns, chosen), _render(turns, rejected))
    assert prompt == turns and c == chosen and r == rejected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_hh_parser_never_crashes_unexpectedly(a, b):
    """Arbitrary text either parses or is rejected with a PairError; nothing else escapes."""
    frame, report = _pairs([{"chosen": "\n\nHuman:" + a, "rejected": "\n\nHuman:" + b}], strict=False, fmt="hh")
    assert len(frame) + report.n_rejected == 1


def test_split_hh_turns_rejects_preamble():
    from workbench.data.pairs import _RowProblem

    with pytest.raises(_RowProblem, match="does not start"):
        split_hh_turns("hello\n\nHuman: x")
