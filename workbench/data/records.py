"""Read the rows of a local pair file (JSONL, JSON, CSV/TSV, parquet, each optionally ``.gz``), one by one.

A row that cannot be read becomes an exception *for that row* (its number, the reason), never an error for the file:
bad JSON, a row nested too deeply to parse, a CSV row with extra cells. A ``.gz`` cut short (an interrupted download)
or corrupt part-way keeps every complete row before the damage and reports the row where the data ends. Only what
leaves no row to recover refuses the whole file: a ``.gz`` that is not gzip at all, a parquet without its footer, a
JSON document that is not an array. Turning rows into pairs is `workbench.data.pairs`' job, not this module's.
"""

from __future__ import annotations

import csv
import io as _io
import json
import re
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".tsv")
_GZIP_MAGIC = b"\x1f\x8b"
_IN_CHUNK, _OUT_CHUNK = 1 << 16, 1 << 20  # bytes read from disk / decompressed per step (a gzip bomb stays bounded)
_CSV_FIELD_CAP = 2**31 - 1  # csv.field_size_limit must fit a C long on every platform (32-bit on Windows)
# the tokens that decide where one element of a JSON array ends: strings (a raw newline ends a broken one), brackets, commas
_JSON_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[\[\]{},]')


def file_format(path: Path) -> str:
    """``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` / ``.tsv`` (a trailing ``.gz`` is allowed)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {''.join(path.suffixes)!r}; use one of {list(SUFFIXES)} (optionally .gz).")
    return suffixes[-1]


# ---------------------------------------------------------------- gzip that stops at the damage


class _GzipStream(_io.RawIOBase):
    """The decompressed bytes of a ``.gz`` file, read as needed; where the data is cut off or corrupt the stream just
    ends and `damage` says why (`gzip.open` raises instead, and the rows already decompressed are lost with it).

    Several gzip members one after another (``cat a.gz b.gz``) read as one stream, as with ``gzip.open``; bytes after
    the last member that are not gzip (zero padding) are ignored, as the ``gzip`` command does.
    """

    def __init__(self, path: Path):
        self.path, self.damage = path, None
        self._file = open(path, "rb")  # closed by close()
        self._inflate = zlib.decompressobj(wbits=31)  # 31: expect a gzip header and trailer
        self._in, self._out, self._at = b"", b"", 0
        self._in_member = self._done = self._more_out = False
        self._first_member = True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        while self._at >= len(self._out) and not self._done:
            self._step()
        n = min(len(buffer), len(self._out) - self._at)
        buffer[:n] = self._out[self._at:self._at + n]
        self._at += n
        return n

    def _step(self) -> None:
        if not self._in and not self._more_out:
            self._in = self._file.read(_IN_CHUNK)
            if not self._in:
                if self._in_member:
                    self.damage = "the gzip stream ends before its end marker (an interrupted download or copy?)"
                self._done = True
                return
        if not self._in_member:
            if not _GZIP_MAGIC.startswith(self._in[:2]):
                if self._first_member:
                    raise ValueError(f"{self.path}: not a valid gzip file (it does not start with the gzip signature); "
                                     "remove the .gz suffix if it is plain text, or re-compress it.")
                self._done = True  # trailing bytes after the last member
                return
            self._in_member = True
        try:
            self._out, self._at = self._inflate.decompress(self._in, _OUT_CHUNK), 0
        except zlib.error as e:
            self.damage, self._done = f"the gzip data is corrupt ({e})", True
            return
        # a full output chunk may leave output inside zlib although every input byte was consumed
        self._more_out = len(self._out) == _OUT_CHUNK
        self._in = self._inflate.unconsumed_tail
        if self._inflate.eof:  # a member ended; another may follow
            self._in = self._inflate.unused_data
            self._inflate = zlib.decompressobj(wbits=31)
            self._in_member = self._first_member = self._more_out = False


def _damage_problem(path: Path, damage: str) -> str:
    return (f"truncated: {path.name} stops here, {damage}; the complete rows before this one are kept; "
            "re-download or re-copy the file to read the rest")


def read_bytes(path: Path) -> tuple[bytes, str | None]:
    """The file's bytes, decompressed when it ends in ``.gz``, and what damage cut them short (``None`` when none)."""
    if path.suffix.lower() != ".gz":
        return path.read_bytes(), None
    with _GzipStream(path) as raw:
        data = _io.BufferedReader(raw).read()
        return data, raw.damage


def _text_lines(path: Path) -> Iterator[str]:
    """Lines of a text file, ``.gz`` or not, read as they are needed (a 100 GB JSONL never sits in memory); bytes that
    are not UTF-8 are kept as surrogate escapes. A damaged ``.gz`` ends with `_Damaged` after its last line."""
    gz = path.suffix.lower() == ".gz"
    raw = _GzipStream(path) if gz else open(path, "rb")  # closed by the wrapper below
    # utf-8-sig: a byte-order mark (Windows editors write one) is not part of row 1
    with _io.TextIOWrapper(_io.BufferedReader(raw) if gz else raw, encoding="utf-8-sig", errors="surrogateescape") as f:
        yield from f
        if gz and raw.damage:
            raise _Damaged(raw.damage)


class _Damaged(Exception):
    """A ``.gz`` file ended early or turned corrupt; raised after the last line that could be read."""


# ---------------------------------------------------------------- rows of each format


def _json_problem(e: Exception) -> ValueError:
    if isinstance(e, RecursionError):
        return ValueError("nested too deeply: the row has more levels of [ or { than the JSON parser allows "
                          "(a pair record needs three or four); fix or remove it")
    if isinstance(e, json.JSONDecodeError):
        # messages such as "Invalid control character at" end in "at"; the column follows here
        return ValueError(f"invalid JSON ({e.msg.removesuffix(' at')} at column {e.colno})")
    return ValueError(f"invalid JSON ({e})")  # e.g. an integer of more than 4300 digits


def _jsonl_record(line: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as e:
        return _json_problem(e)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows of a JSONL file; a blank line is skipped but still counts in the row numbers (they are line numbers)."""
    last: tuple[int, str] | None = None  # held back one line: if the .gz is damaged, the last line may be cut
    try:
        for row, line in enumerate(_text_lines(path), start=1):
            if last and last[1].strip():
                yield last[0], _jsonl_record(last[1])
            last = (row, line)
    except _Damaged as d:
        problem = ValueError(_damage_problem(path, str(d)))
        if last and last[1].strip() and not last[1].endswith("\n"):
            # a cut line can still parse (a number cut short); only a whole object is surely complete
            rec = _jsonl_record(last[1])
            if isinstance(rec, Mapping):
                yield last[0], rec
                yield last[0] + 1, problem
            else:
                yield last[0], problem
            return
        if last and last[1].strip():
            yield last[0], _jsonl_record(last[1])
        yield (last[0] + 1 if last else 1), problem
        return
    if last and last[1].strip():
        yield last[0], _jsonl_record(last[1])


def _json_rows(path: Path, text: str, damage: str | None) -> Iterator[tuple[int, Any]]:
    """Elements of a JSON array (or of the one list in ``{"data": [...]}``, or a single record)."""
    if not text.strip():
        if damage:
            yield 1, ValueError(_damage_problem(path, damage))
        return
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        if text.lstrip()[:1] != "[":
            if isinstance(e, json.JSONDecodeError):
                hint = f"; {_damage_problem(path, damage)}" if damage else ""
                raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: "
                                 f"{e.msg.removesuffix(' at')}{hint}.") from None
            raise ValueError(f"{path}: {_json_problem(e)}.") from None
        yield from _json_array_rows(path, text, text.index("["), damage)  # one bad element must not lose the others
        return
    if isinstance(data, Mapping):  # {"data": [...]} or a single record
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of records, got {type(data).__name__}.")
    yield from enumerate(data, start=1)
    if damage:
        yield len(data) + 1, ValueError(_damage_problem(path, damage))


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _element_end(text: str, at: int, stop: int) -> int:
    """Index of the ``,`` or closing bracket that ends the array element starting at ``at`` (``stop`` if none before it).

    Only strings and brackets are looked at, so an element that is not valid JSON (or too deep to parse) still has an
    end, and the rows after it are read normally.
    """
    depth = 0
    for m in _JSON_TOKEN.finditer(text, at, stop):
        token = m.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth < 0:
                if token == "]":  # only "]" closes the array; a stray "}" is part of the bad element
                    return m.start()
                depth = 0
        elif token == "," and depth == 0:
            return m.start()
    return stop


def _next_element_line(text: str, at: int) -> int | None:
    """Where the next element starts when elements begin lines at one indentation, as ``json.dump`` writes them
    (``None`` when the element at ``at`` shares its line or none follows). An unclosed quote or bracket in one element
    then costs that element only: it cannot reach past the next element's line."""
    indent = text[text.rfind("\n", 0, at) + 1:at]
    if indent.strip():
        return None
    m = re.compile("\n" + re.escape(indent) + r"(?=[{\[])").search(text, at)
    return m.end() if m else None


def _json_array_rows(path: Path, text: str, start: int, damage: str | None) -> Iterator[tuple[int, Any]]:
    """The elements of the array opening at ``text[start]``, each parsed on its own (the slow path, for a bad file)."""
    decoder, at, row = json.JSONDecoder(), _skip_space(text, start + 1), 0
    truncated = _damage_problem(path, damage or "the file ends before the JSON array is closed")
    if text[at:at + 1] == "]":
        if damage:  # whole up to the closing bracket, but the gzip stream still ends badly after it
            yield 1, ValueError(truncated)
        return
    while True:
        row += 1
        at = _skip_space(text, at)
        if at >= len(text):
            yield row, ValueError(truncated)
            return
        try:
            value, end = decoder.raw_decode(text, at)
            end = _skip_space(text, end)
            if end < len(text) and text[end] not in ",]":
                value, end = ValueError("invalid JSON (expected ',' or ']' after the row)"), _element_end(text, end, len(text))
                # (what follows the row's value, up to the next "," or the closing "]", is part of this row)
        except (ValueError, RecursionError) as e:
            value, resume = _json_problem(e), _next_element_line(text, at)
            end = _element_end(text, at, resume or len(text))
            if resume is not None and end >= resume:  # the element never closed: go on at the next element's line
                yield row, value
                at = resume
                continue
        if end >= len(text):  # the array never closes: this row is where the file stops
            complete = isinstance(value, Mapping)
            if complete:
                yield row, value
            elif not damage:  # a plain file: it was cut here, or this row leaves a quote or bracket open
                yield row, ValueError(_damage_problem(path, f"the file ends before the JSON array is closed, or this row "
                                                            f"leaves a quote or bracket open ({value})"))
                return
            yield row + complete, ValueError(truncated)
            return
        yield row, value
        if text[end] != ",":
            if damage:
                yield row + 1, ValueError(truncated)
            return
        at = end + 1


def _raise_csv_field_limit(n_chars: int) -> None:
    # the csv module refuses a cell over 128 KiB by default and the file is lost with it; a long-form response is
    # larger. The limit is process-wide, so it is only ever raised, to the size of the text being read.
    want = min(n_chars + 1, _CSV_FIELD_CAP)
    if csv.field_size_limit() < want:
        csv.field_size_limit(want)


def _csv_rows(path: Path, text: str, damage: str | None, delimiter: str) -> Iterator[tuple[int, Any]]:
    _raise_csv_field_limit(len(text))
    reader = csv.DictReader(_io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, Any]] = []
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            rows.append((len(rows) + 1, ValueError(f"unreadable CSV row ({e})")))
            continue
        if None in rec:
            rows.append((len(rows) + 1, ValueError(f"{len(rec[None])} more cells than header columns {reader.fieldnames}")))
        else:
            rows.append((len(rows) + 1, _decode_json_cells(rec)))
    if damage:
        # the last row is whole only if the text stops at a line end outside any quoted cell ("" escapes a quote)
        whole = text.endswith(("\n", "\r")) and text.count('"') % 2 == 0
        if rows and not whole:
            rows[-1] = (rows[-1][0], ValueError(_damage_problem(path, damage)))
        else:
            rows.append((len(rows) + 1, ValueError(_damage_problem(path, damage))))
    yield from rows


def _decode_json_cells(rec: dict[str, Any]) -> dict[str, Any]:
    """CSV cells that hold a JSON list of chat messages are parsed; everything else stays text.

    A cell like ``[2, 3, 5]`` or ``[]`` is an answer, not a message list: only a non-empty list whose
    items are all ``{"role", "content"}`` objects becomes a list.
    """
    out = {}
    for k, v in rec.items():
        if isinstance(v, str) and v.startswith("[{") and v.endswith("}]"):
            try:
                parsed = json.loads(v)
            except (ValueError, RecursionError):
                parsed = None
            if isinstance(parsed, list) and parsed and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in parsed):
                v = parsed
        out[k] = v
    return out


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows of a parquet file, streamed in record batches (a ``.parquet.gz`` is decompressed in memory first)."""
    source: Any = path
    if path.suffix.lower() == ".gz":
        data, damage = read_bytes(path)
        if damage:
            raise ValueError(f"{path}: {damage}; a parquet file keeps its index at the end, so no row can be recovered "
                             "from a cut copy. Re-download or re-copy it.")
        source = pa.BufferReader(data)
    try:
        batches = pq.ParquetFile(source).iter_batches(batch_size=8192)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable parquet file ({e}); a cut copy (an interrupted download?) loses the "
                         "index parquet keeps at its end. Re-download or re-copy it.") from None
    row = 0
    try:
        for batch in batches:
            for rec in batch.to_pylist():
                row += 1
                yield row, rec
    except (pa.ArrowException, OSError) as e:  # a corrupt page: the rows before it are kept
        yield row + 1, ValueError(f"unreadable parquet data from this row on ({e}); the rows before it are kept")


def iter_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
    """Yield ``(row, record)`` from a local file; a row that cannot be read yields the exception instead.

    Rows are 1-based: the line number for JSONL, the element number for a JSON array, the data row
    (header excluded) for CSV/TSV and parquet. JSONL and parquet are read as they are consumed (bounded
    memory, `workbench.scale.shards.shard_pair_file`); JSON and CSV are read whole. Undecodable bytes are kept as
    surrogate escapes so the validator can name the field that holds them instead of failing the whole file. A ``.gz``
    that ends early or turns corrupt yields its complete rows, then a ``truncated`` exception on the row where it stops.

    Raises:
        ValueError: only when no row can be recovered (not gzip, not parquet, a JSON document that is not an array).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file.")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; pass one pair file (or shard the files one by one).")
    kind = file_format(path)
    if kind == ".parquet":
        yield from _parquet_rows(path)
        return
    if kind == ".jsonl":
        yield from _jsonl_rows(path)
        return
    data, damage = read_bytes(path)
    text = data.decode("utf-8-sig", errors="surrogateescape")  # -sig: drop a byte-order mark
    if kind == ".json":
        yield from _json_rows(path, text, damage)
    else:
        yield from _csv_rows(path, text, damage, "\t" if kind == ".tsv" else ",")
