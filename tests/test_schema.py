import pandas as pd
import pytest

from workbench.data.schema import make_pair_id, prompt_key, validate_pair_frame

P = [{"role": "user", "content": "hi"}]


def test_pair_id_is_order_independent_and_content_sensitive():
    a = make_pair_id(P, "good", "bad")
    assert a == make_pair_id(P, "bad", "good")
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != make_pair_id(P, "good", "bad.")
    assert a != make_pair_id([{"role": "user", "content": "hi!"}], "good", "bad")
    assert a != make_pair_id([{"role": "system", "content": "hi"}], "good", "bad")


def test_pair_id_is_stable_across_versions():
    # A frozen value: changing the hash recipe would orphan every saved tag, score and review.
    assert make_pair_id(P, "good", "bad") == "4d36d51a705b02d6"


def test_prompt_key_ignores_responses():
    assert prompt_key(P) == prompt_key([dict(P[0])])
    assert prompt_key(P) != prompt_key(P + [{"role": "assistant", "content": "x"}])


def test_validate_pair_frame_names_the_problem():
    frame = pd.DataFrame([{"pair_id": "a", "prompt": P, "chosen": "x", "rejected": "y", "source": "s", "split": "train",
                           "label_state": "original", "label_by": "source", "label_at": ""}])
    validate_pair_frame(frame)
    with pytest.raises(ValueError, match=r"missing columns \['source'\]"):
        validate_pair_frame(frame.drop(columns="source"))
    with pytest.raises(ValueError, match=r"row 0: field 'label_state' is 'maybe'"):
        validate_pair_frame(frame.assign(label_state="maybe"))
    with pytest.raises(ValueError, match="appears more than once"):
        validate_pair_frame(pd.concat([frame, frame], ignore_index=True))
