"""The LLM tagger and the LLM judge end to end against the local fake chat-completions server."""

import json
import re

import pytest
from conftest import make_pairs
from fake_llm_server import FakeLLMServer, Reply

from workbench.curation.tagging import LLMTagger, TagConfig, tag_pairs
from workbench.llm.client import ChatClient, EndpointConfig
from workbench.llm.judge import JudgeConfig, LLMJudge, aggregate_votes, candidate_order, judge_pairs
from workbench.runs.stores import ResultStore

ATTRS = {"task_category": "knowledge_qa", "objectivity": "objective", "controversiality": "low",
         "desired_attributes": ["accurate"], "annotation_guideline": "Prefer the accurate answer."}


def _client(srv, **kw):
    settings = {"backoff_s": 0.01, "timeout_s": 5, "max_retries": 2, **kw}
    return ChatClient(EndpointConfig(base_url=srv.base_url, model="fake-model", **settings))


def test_llm_tagger_validates_and_records_failures(tmp_path):
    with FakeLLMServer(responder=lambda req: json.dumps(ATTRS)) as srv:
        srv.plan(Reply.ok(json.dumps({**ATTRS, "task_category": "cooking"})),  # schema-invalid, re-asked once
                 Reply.ok(json.dumps(ATTRS)))
        tagger = LLMTagger(_client(srv, concurrency=1))
        tags = tag_pairs(make_pairs(3), tagger, store=ResultStore(tmp_path / "t.sqlite", "tags"), progress=False)
        assert tags["tag_ok"].all() and set(tags["task_category"]) == {"knowledge_qa"} and not tags["heuristic"].any()
        assert tagger.fingerprint == "llm:fake-model:v1"
    with FakeLLMServer() as srv:  # every answer is an error: recorded with the reason, never dropped
        srv.plan(*[Reply.error(500)] * 20)
        tags = tag_pairs(make_pairs(2), LLMTagger(_client(srv, concurrency=1)),
                         store=ResultStore(tmp_path / "t2.sqlite", "tags"), progress=False)
        assert not tags["tag_ok"].any() and all("HTTP 500" in e for e in tags["tag_error"])


def test_interrupted_llm_tagging_resumes_with_zero_repeated_requests(tmp_path):
    pairs = make_pairs(12)
    store_path = tmp_path / "tags.sqlite"
    with FakeLLMServer(responder=lambda req: json.dumps(ATTRS)) as srv:
        tagger = LLMTagger(_client(srv, concurrency=4))
        real = tagger.tag_batch
        calls = {"n": 0}

        def crash_after_two_chunks(chunk):
            calls["n"] += 1
            if calls["n"] > 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the run
            return real(chunk)

        tagger.tag_batch = crash_after_two_chunks
        with pytest.raises(KeyboardInterrupt):
            tag_pairs(pairs, tagger, store=ResultStore(store_path, "tags"), cfg=TagConfig(chunk_size=4), progress=False)
        assert len(srv.chat_requests()) == 8
        tagger2 = LLMTagger(_client(srv, concurrency=4))
        tags = tag_pairs(pairs, tagger2, store=ResultStore(store_path, "tags"), cfg=TagConfig(chunk_size=4), progress=False)
        assert tags["tag_ok"].all()
        sent = [json.dumps(r.body["messages"]) for r in srv.chat_requests()]
        assert len(sent) == 12 and len(set(sent)) == 12  # every pair asked exactly once over both runs


def _judge_responder(good_marker="great"):
    """Answers which candidate contains `good_marker` (the planted chosen response says 'is great')."""
    def respond(req):
        text = req["messages"][-1]["content"].split("Now judge this one.")[-1]
        c1 = re.search(r"Candidate 1:\n(.*?)\n\nCandidate 2:", text, re.S).group(1)
        return json.dumps({"reason": "contains the keyword", "better": 1 if good_marker in c1 else 2})
    return respond


def test_judge_maps_randomised_order_back_and_aggregates(tmp_path):
    pairs = make_pairs(8)
    with FakeLLMServer(responder=_judge_responder()) as srv:
        judge = LLMJudge([_client(srv)], JudgeConfig(samples=3, seed=1))
        out = judge_pairs(pairs, judge, store=ResultStore(tmp_path / "j.sqlite", "judgments"), progress=False)
        assert (out["judge_label"] == "chosen").all() and (out["votes_chosen"] == 3).all()
        shown_first = [r["chosen_first"] for raw in out["raw"] for r in raw]
        assert 0 < sum(shown_first) < len(shown_first)  # both orders were used
        n_requests = len(srv.chat_requests())
        assert n_requests == 8 * 3
        again = judge_pairs(pairs, judge, store=ResultStore(tmp_path / "j.sqlite", "judgments"), progress=False)
        assert len(srv.chat_requests()) == n_requests and again["judge_label"].tolist() == out["judge_label"].tolist()
    flipped = pairs.assign(chosen=pairs["rejected"], rejected=pairs["chosen"])  # now the label is wrong
    with FakeLLMServer(responder=_judge_responder()) as srv:
        out = judge_pairs(flipped, LLMJudge([_client(srv)], JudgeConfig(samples=1)),
                          store=ResultStore(tmp_path / "j2.sqlite", "judgments"), progress=False)
        assert (out["judge_label"] == "rejected").all()


def test_judge_prompt_has_guideline_and_examples(tmp_path):
    pairs = make_pairs(3)
    seen = []
    with FakeLLMServer(responder=lambda req: seen.append(req) or json.dumps({"reason": "x", "better": 1})) as srv:
        judge = LLMJudge([_client(srv)], JudgeConfig(samples=1))
        judge_pairs(pairs.iloc[:1], judge, store=ResultStore(tmp_path / "j.sqlite", "judgments"),
                    attributes={pairs["pair_id"].iloc[0]: ATTRS},
                    examples={pairs["pair_id"].iloc[0]: [pairs.iloc[1], pairs.iloc[2]]}, progress=False)
    user = seen[0]["messages"][-1]["content"]
    assert "Annotation guideline: Prefer the accurate answer." in user
    assert "Example 1 (labeled by a person)" in user and "Example 2 (labeled by a person)" in user


def test_aggregate_votes_and_order_coin():
    assert aggregate_votes({"a": ["chosen", "chosen", "rejected"], "b": ["rejected"]})[0] == "tie"
    assert aggregate_votes({"a": ["chosen", "chosen", "rejected"], "b": ["chosen"], "c": ["rejected"]})[0] == "chosen"
    assert aggregate_votes({"a": []})[0] == "tie"
    coins = [candidate_order(f"p{i}", 0, 0) for i in range(200)]
    assert 70 < sum(coins) < 130 and coins == [candidate_order(f"p{i}", 0, 0) for i in range(200)]


def test_a_failed_judgement_is_not_a_tie_and_retry_failed_asks_again(tmp_path):
    from workbench.curation import stage2
    from workbench.curation.review import JudgeReviewer
    from workbench.llm.judge import FAILED

    pairs = make_pairs(3)
    store = ResultStore(tmp_path / "j.sqlite", "judge")
    with FakeLLMServer(responder=lambda req: "I think the first one is nicer.") as srv:  # never valid JSON
        reviewer = JudgeReviewer(LLMJudge([_client(srv, max_retries=1)], JudgeConfig(samples=2)), store)
        out = judge_pairs(pairs, reviewer.judge, store=store, progress=False)
        assert out["judge_label"].eq(FAILED).all() and out["n_valid"].eq(0).all()
        asked = len(srv.chat_requests())
        assert reviewer.decide(pairs) == [] and reviewer.failed_ids == set(pairs["pair_id"])  # no decision recorded
        assert len(srv.chat_requests()) == asked  # stored failures are not asked again ...
        labels = stage2.judge_labels(pairs, [0.4, 0.4, 0.9], reviewer, stage2.Stage2Config())
        assert labels == [FAILED, FAILED, None]  # the confident pair was not asked
        decisions = stage2.consistency_decisions(pairs["pair_id"], [0.4, 0.4, 0.9], [0.9, 0.9, 0.9], labels)
        assert decisions["judge_vote"].eq(0).all() and decisions["stage2_decision"].tolist() == ["drop", "drop", "keep"]
    with FakeLLMServer(responder=lambda req: json.dumps({"reason": "r", "better": 1})) as srv:
        retried = JudgeReviewer(LLMJudge([_client(srv)], JudgeConfig(samples=2)), store, retry_failed=True)
        decided = retried.decide(pairs)  # ... unless retry_failed: now the judge answers
        assert len(decided) == 3 and retried.failed_ids == set() and len(srv.chat_requests()) == 6
