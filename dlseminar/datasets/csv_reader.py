"""Reading a CSV file as people have them: the bytes -> a header and rows of text cells.

What arrives here comes from spreadsheets and scripts in many dialects: comma, semicolon or
tab between cells; UTF-8 with or without a byte-order mark, UTF-16 (a spreadsheet's "Unicode
text"), or a Windows code page; CRLF line ends; quoted cells holding the delimiter. This
module settles all of that and refuses, in one line, what is not a table with a header row:
a binary file, one column, a first line of numbers. Which cells are numbers is tabular.py's
business.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..console import note
from ..errors import DataError

DELIMITERS = (",", ";", "\t")  # in this order of preference when two fit equally well
NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
SNIFF_RECORDS = 50  # records read with each candidate delimiter to choose one


@dataclass
class CsvText:
    """The file as text cells: header (stripped names), rows with the file line each one ends on."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    delimiter: str
    bad: "BadRows"


@dataclass
class BadRows:
    """Rows with a bad cell: an error naming the line, or (data.skip_bad) counted and left out."""

    path: str
    skip: bool
    found: list[tuple[int, str]] = field(default_factory=list)

    def __call__(self, line: int, what: str) -> None:
        """`what` completes "<path>: line N<what>", e.g. ", column 'y': the cell is empty"."""
        if not self.skip:
            raise DataError(f"{self.path}: line {line}{what} (data.skip_bad: true leaves such rows out)")
        self.found.append((line, what))

    def report(self, total: int) -> None:
        """One note with the count of rows left out (none: silent)."""
        if self.found:
            line, what = self.found[0]
            note(f"data.skip_bad: left out {len(self.found)} of {total} rows of {self.path} "
                 f"(the first: line {line}{what})")


def number(cell: str, decimal_comma: bool = False) -> float | None:
    """The cell as a float (nan and inf included), or None when it is not a number."""
    try:
        return float(cell)
    except ValueError:
        pass
    if decimal_comma and cell.count(",") == 1:  # 1,5 in a semicolon file: the decimal comma of many locales
        try:
            return float(cell.replace(",", "."))
        except ValueError:
            return None
    return None


def finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _decode(raw: bytes, path: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with its byte-order mark
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(f"CSV file {path!r} starts like UTF-16 text but is not valid UTF-16") from None
    if b"\x00" in raw[:65536]:
        raise DataError(f"CSV file {path!r} is not text (it holds NUL bytes): is it a binary file?")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = e.start
    # Not UTF-8: most likely saved by a spreadsheet in a Windows code page. Numbers read the same;
    # only names and text cells depend on it, so read it and say so rather than refuse.
    for enc, label in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        line = raw.count(b"\n", 0, bad) + 1
        note(f"{path} is not UTF-8 (byte {raw[bad]:#04x} on line {line}); read it as {label}")
        return text
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _records(text: str, delimiter: str, path: str, limit: int | None = None):
    """(line the record ends on, cells) of every record that has a non-blank cell."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    out = []
    try:
        for row in reader:
            if any(c.strip(" \t,;") for c in row):  # a line of only delimiters is blank under any delimiter
                out.append((reader.line_num, row))
                if limit is not None and len(out) >= limit:
                    break
    except csv.Error as e:
        if limit is not None:  # while choosing a delimiter: this one does not fit
            return None
        if "field larger than field limit" in str(e):
            raise DataError(f"{path}: line {reader.line_num} has a cell longer than {csv.field_size_limit()} "
                            f"characters; is it a CSV file?") from None
        raise DataError(f"cannot read CSV file {path!r} at line {reader.line_num}: {e}") from None
    return out


def _delimiter(text: str, path: str) -> str:
    """The delimiter under which the header has most columns and most of the first rows match it."""
    best, best_score = ",", None
    for d in DELIMITERS:
        recs = _records(text, d, path, SNIFF_RECORDS)
        if not recs:
            continue
        width = len(recs[0][1])
        same = sum(len(r) == width for _, r in recs[1:])
        score = (width > 1, same, width)
        if best_score is None or score > best_score:
            best, best_score = d, score
    return best


def read_csv(path, skip_bad: bool = False) -> CsvText:
    """Read `path` into a header and rows of equal width; every problem is one DataError line."""
    if not path:
        raise DataError("dataset csv needs data.path (e.g. --set data.path=my.csv)")
    p = Path(path)
    if not p.exists():
        raise DataError(f"CSV file {str(path)!r} not found")
    if not p.is_file():
        raise DataError(f"{str(path)!r} is not a file" + (" but a directory" if p.is_dir() else ""))
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read CSV file {str(path)!r}: {e.strerror or e}") from None
    path = str(path)
    text = _decode(raw, path)
    delimiter = _delimiter(text, path)
    records = _records(text, delimiter, path)
    if not records:
        raise DataError(f"CSV file {path!r} is empty")
    first, header = records[0]
    header = [h.strip() for h in header]
    body = records[1:]
    # A trailing delimiter on every line (some spreadsheets write "a;b;y;") is an empty last column.
    while len(header) > 1 and header[-1] == "" and all(len(r) < len(header) or not r[len(header) - 1].strip()
                                                         for _, r in body):
        header.pop()
        body = [(n, r[:len(header)] if len(r) > len(header) else r) for n, r in body]
    if len(header) < 2:
        raise DataError(f"CSV file {path!r} has a single column ({header[0]!r}); a table needs a target and a "
                        f"feature, separated by commas, semicolons or tabs")
    if all(number(h, delimiter == ";") is not None for h in header):
        shown = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
        raise DataError(f"CSV file {path!r} has no header row: its line {first} ({shown}) holds only numbers; "
                        f"add a first line with the column names")
    if not body:
        raise DataError(f"CSV file {path!r} has a header but no data rows")
    bad = BadRows(path, skip_bad)
    rows, lines = [], []
    for n, r in body:
        if len(r) != len(header):
            bad(n, f" has {len(r)} cells, the header has {len(header)} ({NAMES[delimiter]}s between cells)")
            continue
        rows.append(r)
        lines.append(n)
    if not rows:
        raise DataError(f"CSV file {path!r}: every data row was left out as bad ({len(bad.found)} rows)")
    return CsvText(path, header, rows, lines, delimiter, bad)
