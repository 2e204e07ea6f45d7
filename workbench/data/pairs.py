"""Parse and validate preference pairs from the record formats real users have.

Formats (``fmt=``), auto-detected from the first record's keys when ``fmt="auto"``:

* ``hh`` — Anthropic HH-RLHF: ``{"chosen": dialogue, "rejected": dialogue}``, each the whole
  ``"\\n\\nHuman: … \\n\\nAssistant: …"`` text. Split into the shared prompt and two final responses.
* ``conversational`` — ``{"chosen": [messages], "rejected": [messages]}`` with an optional
  ``"prompt": [messages]`` (Skywork-Reward-Preference, UltraFeedback-binarized).
* ``prompt_strings`` — ``{"prompt": str | [messages], "chosen": str, "rejected": str}`` (RewardBench).
* ``llmbar`` — ``{"input", "output_1", "output_2", "label": 1 | 2}`` (LLMBar).

Every problem is reported with the file, the row and the field. With ``strict=True`` the first bad
row raises `PairError`; with ``strict=False`` bad rows are collected in `ReadReport.rejects` with the
reason, so nothing is dropped silently. This module never touches disk: `workbench.data.files.read_pairs`
feeds it records.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from workbench.data.schema import ROLES, Message, PairFrame, make_pair_id

HUMAN_MARK = "\n\nHuman:"
ASSISTANT_MARK = "\n\nAssistant:"
_TURN_RE = re.compile(r"\n\n(Human|Assistant):")
_ROLE_OF = {"Human": "user", "Assistant": "assistant"}
_UNDECODABLE_RE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept as surrogate escapes
_SURROGATE_RE = re.compile("[\ud800-\udfff]")  # any lone surrogate (e.g. JSON "\\ud83d"): no UTF-8 encoding exists
DETECT_SAMPLE = 50  # rows looked at to decide a file's format (a bad first row must not decide it)


class PairError(ValueError):
    """A record that cannot become a valid pair; the message names file, row and field."""

    def __init__(self, where: str, row: int, field_name: str, problem: str):
        self.where, self.row, self.field, self.problem = where, row, field_name, problem
        super().__init__(f"{where}: row {row}: field {field_name!r}: {problem}")


_KIND_END = re.compile(r":|;| \(| \[|, got ")  # where the kind of a problem ends and its particulars begin


class _RowProblem(Exception):
    """Raised inside the per-format parsers; turned into a PairError or a reject by the caller.

    ``kind`` groups rejects in `ReadReport.reasons`: the problem's head, before its particulars (``"missing"`` for
    ``"missing (keys present: [...])"``), unless given.
    """

    def __init__(self, field_name: str, problem: str, kind: str | None = None):
        super().__init__(problem)
        self.field, self.problem = field_name, problem
        self.kind = kind or _KIND_END.split(problem, maxsplit=1)[0].strip()


@dataclass
class ReadReport:
    """What happened while reading one source: counts, rejects with reasons, and quirks seen."""

    where: str
    fmt: str = ""
    n_rows: int = 0
    n_ok: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    quirks: Counter = field(default_factory=Counter)

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)

    def reasons(self) -> dict[str, int]:
        """Reject counts by (field, problem kind), e.g. ``{"chosen/rejected: identical": 2}``."""
        return dict(Counter(f"{r['field']}: {r['kind']}" for r in self.rejects))

    def summary(self) -> str:
        """One line for logs and notebooks."""
        quirks = f"; quirks {dict(self.quirks)}" if self.quirks else ""
        return (
            f"{self.where} [{self.fmt}]: {self.n_rows} rows -> {self.n_ok} pairs, "
            f"{self.n_rejected} rejected {self.reasons() or ''}{quirks}"
        )


# ---------------------------------------------------------------- HH-RLHF dialogue text


def split_hh_turns(text: str) -> list[Message]:
    """Split ``"\\n\\nHuman: a\\n\\nAssistant: b"`` into chat messages (contents stripped).

    Example: ``split_hh_turns("\\n\\nHuman: hi\\n\\nAssistant: yo")`` ->
    ``[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]``.
    """
    parts = _TURN_RE.split(text)
    if parts[0].strip():
        raise _RowProblem("chosen", f"dialogue does not start with '\\n\\nHuman:' (starts {parts[0][:40]!r})",
                          kind="dialogue does not start with Human")
    return [{"role": _ROLE_OF[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]


def _common_prefix_len(a: str, b: str) -> int:
    """Length of the common prefix by binary search over slice comparisons (C speed, not a char loop)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def parse_hh_dialogue(chosen_text: str, rejected_text: str) -> tuple[list[Message], str, str]:
    """Split two HH dialogues into (shared prompt messages, chosen response, rejected response).

    The prompt is the longest common prefix of the two dialogues cut back to the last
    ``"\\n\\nAssistant:"`` inside it. Splitting at the last marker of each dialogue instead is wrong
    on real HH rows whose final response rambles on into fake ``Human:``/``Assistant:`` turns: there,
    the two "prompts" would differ. Such responses are kept whole (see `response_has_turn_marker`).
    """
    common = chosen_text[: _common_prefix_len(chosen_text, rejected_text)]
    cut = common.rfind(ASSISTANT_MARK)
    if cut < 0:
        raise _RowProblem(
            "chosen/rejected",
            "prompt prefixes do not match: the two dialogues share no '\\n\\nHuman: … \\n\\nAssistant:' "
            f"prefix (they diverge at character {len(common)})",
        )
    end = cut + len(ASSISTANT_MARK)
    prompt = split_hh_turns(chosen_text[:end])[:-1]  # the last item is the empty final Assistant turn
    return prompt, chosen_text[end:].strip(), rejected_text[end:].strip()


def response_has_turn_marker(response: str) -> bool:
    """True when a response contains a ``Human:``/``Assistant:`` turn marker (an HH-RLHF quirk)."""
    return bool(_TURN_RE.search(response)) or response.startswith(("Human:", "Assistant:"))


# ---------------------------------------------------------------- per-format parsers


def _keys_present(rec: Mapping[str, Any], limit: int = 12) -> str:
    """``['a', 'b', … 30 more]``: the record's keys, capped so that a wide record keeps the message on one line."""
    keys = sorted(str(k)[:40] for k in rec)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return f"[{shown}{f', … {len(keys) - limit} more' if len(keys) > limit else ''}]"


def _require(rec: Mapping[str, Any], key: str) -> Any:
    """``rec[key]``; a key that is absent and one that holds null are told apart (both are problems)."""
    if key not in rec:
        raise _RowProblem(key, f"missing (keys present: {_keys_present(rec)})")
    if rec[key] is None:
        raise _RowProblem(key, "null: the field is there but has no value (JSON null, or a CSV row with fewer cells "
                               "than the header)")
    return rec[key]


def _need_str(rec: Mapping[str, Any], key: str) -> str:
    value = _require(rec, key)
    if not isinstance(value, str):
        raise _RowProblem(key, f"must be a string, got {type(value).__name__}")
    return value


def _messages(value: Any, key: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = list(value)  # numpy object arrays, as pandas returns list columns read from parquet
    if not isinstance(value, (list, tuple)):
        raise _RowProblem(key, f"must be a list of {{role, content}} messages, got {type(value).__name__}")
    out: list[Message] = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise _RowProblem(f"{key}[{i}]", "each message needs 'role' and 'content'")
        role, content = m["role"], m["content"]
        if role == "human":
            role = "user"
        if not isinstance(role, str) or role not in ROLES:
            raise _RowProblem(f"{key}[{i}].role", f"unknown role {role!r}; expected one of {sorted(ROLES)}")
        if not isinstance(content, str):
            raise _RowProblem(f"{key}[{i}].content", f"must be a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    return out


def _from_hh(rec: Mapping[str, Any]) -> tuple[list[Message], str, str]:
    # Windows line ends inside the dialogue would hide the "\n\nHuman:" turn markers
    chosen, rejected = (_need_str(rec, k).replace("\r\n", "\n") for k in ("chosen", "rejected"))
    if chosen == rejected:
        raise _RowProblem("chosen/rejected", "identical: chosen dialogue equals rejected dialogue")
    return parse_hh_dialogue(chosen, rejected)


def _from_conversational(rec: Mapping[str, Any]) -> tuple[list[Message], str, str]:
    chosen, rejected = _messages(_require(rec, "chosen"), "chosen"), _messages(_require(rec, "rejected"), "rejected")
    if not chosen or not rejected:
        raise _RowProblem("chosen" if not chosen else "rejected", "empty message list")
    for key, conv in (("chosen", chosen), ("rejected", rejected)):
        if conv[-1]["role"] != "assistant":
            raise _RowProblem(f"{key}[-1].role", f"the last message must be the assistant's, got {conv[-1]['role']!r}")
    if rec.get("prompt") is not None:
        prompt = _messages(rec["prompt"], "prompt")
        head_c, head_r = chosen[:-1], rejected[:-1]
        if head_c and head_c != prompt or head_r and head_r != prompt:
            raise _RowProblem("prompt", "prompt prefixes do not match: chosen/rejected repeat a different conversation")
    else:
        prompt = chosen[:-1]
        if rejected[:-1] != prompt:
            raise _RowProblem("chosen/rejected", "prompt prefixes do not match: the conversations before the final turn differ")
    return prompt, chosen[-1]["content"], rejected[-1]["content"]


def _from_prompt_strings(rec: Mapping[str, Any]) -> tuple[list[Message], str, str]:
    return _messages(_require(rec, "prompt"), "prompt"), _need_str(rec, "chosen"), _need_str(rec, "rejected")


def _from_llmbar(rec: Mapping[str, Any]) -> tuple[list[Message], str, str]:
    prompt, out1, out2 = _need_str(rec, "input"), _need_str(rec, "output_1"), _need_str(rec, "output_2")
    label = rec.get("label")
    if label not in (1, 2):
        raise _RowProblem("label", f"must be 1 or 2 (the better output), got {label!r}")
    chosen, rejected = (out1, out2) if label == 1 else (out2, out1)
    return [{"role": "user", "content": prompt}], chosen, rejected


PARSERS: dict[str, Callable[[Mapping[str, Any]], tuple[list[Message], str, str]]] = {
    "hh": _from_hh,
    "conversational": _from_conversational,
    "prompt_strings": _from_prompt_strings,
    "llmbar": _from_llmbar,
}


def detect_file_format(sample: Sequence[Any], *, where: str = "records") -> str:
    """The format most of a sample of records have (`detect_format` per record; unreadable ones skipped).

    A bad or odd first row does not decide a file's format: the majority of up to `DETECT_SAMPLE` rows does.
    """
    votes = Counter()
    for rec in sample:
        if isinstance(rec, Mapping):
            try:
                votes[detect_format(rec)] += 1
            except ValueError:
                pass
    if not votes:
        fix = f"pass fmt= one of {sorted(PARSERS)} (or columns= to rename your fields to prompt/chosen/rejected)"
        if not sample:
            raise ValueError(f"{where}: no rows to read: the file is empty (or holds only a header / blank lines).")
        first = next((r for r in sample if isinstance(r, Mapping)), None)
        if first is not None:
            raise ValueError(f"Cannot detect the pair format of {where} from its first {len(sample)} rows "
                             f"(keys of the first record: {_keys_present(first)}); {fix}.")
        bad = next((r for r in sample if isinstance(r, Exception)), None)
        raise ValueError(f"Cannot detect the pair format of {where}: none of its first {len(sample)} rows is a record "
                         f"({f'the first problem: {bad}' if bad else f'the first is a {type(sample[0]).__name__}'}); {fix}.")
    return votes.most_common(1)[0][0]


def detect_format(rec: Mapping[str, Any]) -> str:
    """Guess the format from one record's keys and value types; raises listing the known formats."""
    if {"input", "output_1", "output_2"} <= set(rec):
        return "llmbar"
    if "chosen" in rec and "rejected" in rec:
        if isinstance(rec["chosen"], (list, tuple)) or hasattr(rec["chosen"], "shape"):
            return "conversational"
        if "prompt" in rec:
            return "prompt_strings"
        if isinstance(rec["chosen"], str) and rec["chosen"].replace("\r\n", "\n").lstrip(" ").startswith(
                ("\n\nHuman:", "Human:")):
            return "hh"
    raise ValueError(
        f"Cannot detect the pair format from keys {_keys_present(rec)}; pass fmt= one of {sorted(PARSERS)} "
        "(or columns= to rename your fields to prompt/chosen/rejected)."
    )


# ---------------------------------------------------------------- validation + assembly


def _check_text(value: str, key: str) -> None:
    if not value.strip():
        raise _RowProblem(key, "empty response" if key in ("chosen", "rejected") else "empty text")
    if _UNDECODABLE_RE.search(value):
        raise _RowProblem(key, "undecodable bytes: the text is not valid UTF-8 (re-encode the file as UTF-8)")
    lone = _SURROGATE_RE.search(value)
    if lone:
        at = lone.start()
        raise _RowProblem(key, f"invalid unicode: a lone surrogate {value[at]!r} at character {at} (half of an emoji "
                               "escape, e.g. \\ud83d without its pair); it cannot be written as UTF-8")


def validate_pair(prompt: list[Message], chosen: str, rejected: str, *, prompt_field: str | None = None) -> None:
    """Content checks shared by all formats: non-empty texts, valid UTF-8, chosen != rejected.

    ``prompt_field`` names the record's field when the prompt was one text there (``"prompt"``, LLMBar's
    ``"input"``): problems are then reported on it, not on ``prompt[0].content``, which the file does not have.
    """
    if not prompt:
        raise _RowProblem(prompt_field or "prompt", "empty conversation: no messages before the compared responses")
    if not any(m["role"] == "user" for m in prompt):
        raise _RowProblem(prompt_field or "prompt", "the conversation has no user message")
    for i, m in enumerate(prompt):
        if _SURROGATE_RE.search(m["content"]):  # undecodable bytes or lone surrogates: named by _check_text
            _check_text(m["content"], prompt_field or f"prompt[{i}].content")
    if not prompt[-1]["content"].strip():
        if prompt_field:
            raise _RowProblem(prompt_field, "empty text")
        raise _RowProblem(f"prompt[{len(prompt) - 1}].content", "the last prompt message is empty")
    _check_text(chosen, "chosen")
    _check_text(rejected, "rejected")
    if chosen.strip() == rejected.strip():
        raise _RowProblem("chosen/rejected", "identical: chosen response equals rejected response")


def _excerpt(rec: Any, limit: int = 300) -> str:
    """The start of a rejected row, ASCII-escaped (lone surrogates and odd bytes survive being written)."""
    try:
        text = json.dumps(rec, ensure_ascii=True, default=str) if not isinstance(rec, Exception) else ""
    except (TypeError, ValueError, RecursionError):
        text = repr(rec)[: limit * 4].encode("ascii", "backslashreplace").decode()
    return text[:limit] + ("..." if len(text) > limit else "")


def now_iso() -> str:
    """Current UTC time, ISO-8601, second precision (the `label_at` format)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_TEXT_PROMPT_FIELD = {"prompt_strings": "prompt", "llmbar": "input"}  # formats whose prompt can be one text field


def _parse_row(rec: Any, fmt: str) -> tuple[list[Message], str, str]:
    """One record -> (prompt, chosen, rejected), checked; every problem is a `_RowProblem` naming the field."""
    if isinstance(rec, Exception):
        raise _RowProblem("<record>", str(rec))
    if not isinstance(rec, Mapping):
        raise _RowProblem("<record>", f"must be an object/dict, got {type(rec).__name__}")
    try:
        prompt, chosen, rejected = PARSERS[fmt](rec)
    except _RowProblem:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as e:
        # a value of a shape no parser expects must cost its row only, never the whole file
        raise _RowProblem("<record>", f"unreadable record ({type(e).__name__}: {e})") from None
    field_name = _TEXT_PROMPT_FIELD.get(fmt)
    validate_pair(prompt, chosen, rejected, prompt_field=field_name if isinstance(rec.get(field_name), str) else None)
    return prompt, chosen, rejected


def records_to_pairs(
    records: Iterable[tuple[int, Mapping[str, Any] | Exception]],
    *,
    where: str,
    source: str,
    fmt: str = "auto",
    strict: bool = True,
    keep: Iterable[str] = (),
) -> tuple[PairFrame, ReadReport]:
    """Turn ``(row_number, record)`` items into a canonical pair frame.

    Args:
        records: row numbers (1-based, as the user sees them) with parsed dicts, or with the
            exception a reader hit on that row (bad JSON, undecodable bytes).
        where: the file or dataset name used in error messages.
        source: value of the ``source`` column.
        fmt: one of `PARSERS` or ``"auto"``.
        strict: raise `PairError` on the first bad row, else collect it in the report.
        keep: extra record fields copied into columns (e.g. ``["subset", "id"]``).

    Returns:
        The pairs (label_state ``original``, split ``""``) and a `ReadReport`.
    """
    if fmt != "auto" and fmt not in PARSERS:
        raise ValueError(f"Unknown format {fmt!r}; choose one of {sorted(PARSERS)} or 'auto'.")
    report, rows, stamp, keep = ReadReport(where=where, fmt=fmt), [], now_iso(), list(keep)
    records = iter(records)
    if fmt == "auto":
        sample = list(itertools.islice(records, DETECT_SAMPLE))
        report.fmt = detect_file_format([rec for _, rec in sample], where=where)
        records = itertools.chain(sample, records)
    first_label: dict[str, str] = {}  # pair_id -> chosen of its first row: a repeat is a duplicate, a swap a conflict
    for row, rec in records:
        report.n_rows += 1
        try:
            prompt, chosen, rejected = _parse_row(rec, report.fmt)
            pair_id = make_pair_id(prompt, chosen, rejected)
            if pair_id in first_label:
                same = first_label[pair_id] == chosen
                raise _RowProblem("pair_id", ("duplicate: the same pair as an earlier row" if same else
                                              "duplicate with the opposite label: an earlier row prefers the other "
                                              "response (conflicting labels; the first is kept)") + f" ({pair_id})")
            first_label[pair_id] = chosen
        except _RowProblem as p:
            if strict:
                raise PairError(where, row, p.field, p.problem) from None
            report.rejects.append({"where": where, "row": row, "field": p.field, "kind": p.kind, "reason": p.problem,
                                   "excerpt": _excerpt(rec)})
            continue
        if report.fmt == "hh" and (response_has_turn_marker(chosen) or response_has_turn_marker(rejected)):
            report.quirks["response contains a turn marker"] += 1
        extra = {k: rec.get(k) for k in keep}
        rows.append(
            {"pair_id": pair_id, "prompt": prompt, "chosen": chosen,
             "rejected": rejected, "source": source, "split": "", "label_state": "original",
             "label_by": "source", "label_at": stamp, "source_row": row, **extra}
        )
    report.n_ok = len(rows)
    columns = ["pair_id", "prompt", "chosen", "rejected", "source", "split", "label_state", "label_by",
               "label_at", "source_row", *keep]
    return pd.DataFrame(rows, columns=columns), report
