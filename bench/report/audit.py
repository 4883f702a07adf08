"""Auditable boards: every board directory carries ``board-data.json.gz``, the table its reports were rendered
from, and ``unlearn-bench report --rescore BOARD_DIR`` renders the board again from that file alone and
compares every file byte for byte with the committed one.

The data file holds what the reporters read from a ``ResultTable``: the base and cell records (``to_json``,
with every metric's per-item values and weights, which the bootstrap resamples), the attack records, the
tuning selections, the sample generations shown, the scoring settings (utility budget, resamples, bootstrap
seed), the reporters that wrote the board, the data format and the unlearn-bench version. It is gzipped
deterministically (no timestamp, no file name, records in table order): the same table gives the same bytes,
so a rescore regenerates the data file itself too. JSON keys keep their order — it is data here (a task's
metrics are listed in evaluation order; ``results.json`` repeats the stored provenance as stored).
"""

from __future__ import annotations

import gzip
import json
import logging
import tempfile
import zlib
from pathlib import Path
from typing import Any

from bench import __version__
from bench.api import Reporter
from bench.engine.store import atomic_write_bytes
from bench.errors import UserError
from bench.report import ResultTable, Sources, read_samples, sample_key, table_from_records
from bench.report.reporters.html import SAMPLES_PER_CELL

log = logging.getLogger("unlearn_bench")

BOARD_DATA = "board-data.json.gz"
#: Version of the data file's layout; a file of another version is refused (regenerate the board).
FORMAT = 1
#: Largest data file a board should carry (committed boards stay small enough to review and clone).
SIZE_LIMIT = 2 * 1024 * 1024
#: Sample generations kept per base evaluation and per cell: as many as the HTML page shows.
SAMPLES_KEPT = SAMPLES_PER_CELL

IDENTICAL = "identical"
DIFFERS = "differs"
MISSING = "differs (missing from the board)"
NOT_REGENERATED = "differs (not regenerated)"


# -- writing ---------------------------------------------------------------------------------------
def _samples(table: ResultTable) -> dict[str, list[dict[str, Any]]]:
    """The sample generations reporters may show, by ``sample_key``: read now, while the runs exist."""
    wanted = [("base", base_id) for base_id in table.bases]
    wanted += [("cells", r.cell_id) for cell in table.cells for r in cell.results]
    found = {sample_key(kind, ident): read_samples(table.sources, ident, SAMPLES_KEPT, kind=kind)
             for kind, ident in wanted}
    return {key: rows for key, rows in found.items() if rows}


def board_record(table: ResultTable, reporters: list[str]) -> dict[str, Any]:
    """Everything the reporters read from ``table``, as JSON (cells flat, in table order: regrouping them
    with ``table_from_records`` gives the same cells in the same order)."""
    return {"format": FORMAT, "unlearn_bench": __version__, "reporters": list(reporters),
            "utility_budget": table.utility_budget, "resamples": table.resamples,
            "bootstrap_seed": table.bootstrap_seed, "sources": list(table.sources),
            "bases": [b.to_json() for b in table.bases.values()],
            "cells": [r.to_json() for cell in table.cells for r in cell.results],
            "attacks": table.attacks, "tuning": table.tuning, "samples": _samples(table)}


def encode(record: dict[str, Any]) -> bytes:
    """Compact JSON, gzipped with a zero timestamp and no file name: equal records give equal bytes."""
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def write_board_data(table: ResultTable, out_dir: Path, reporters: list[str] | None = None) -> Path:
    """Write ``out_dir/board-data.json.gz``; a file over ``SIZE_LIMIT`` is still written, with a warning."""
    data = encode(board_record(table, reporters or []))
    path = Path(out_dir) / BOARD_DATA
    atomic_write_bytes(path, data)
    if len(data) > SIZE_LIMIT:
        log.warning("%s is %.1f MB, over the %.0f MB a board should carry", path, len(data) / 2**20,
                    SIZE_LIMIT / 2**20)
    return path


def make_reporters(names: list[str] | None) -> tuple[list[str], list[Reporter]]:
    """The named reporters (default: every registered one), built before anything is written: an unknown name
    fails first."""
    from bench.plugins import registry

    reg = registry()
    names = list(names or reg.names("reporter"))
    return names, [reg.get("reporter", n).cls() for n in names]


def write_board(table: ResultTable, out_dir: Path, reporters: list[Reporter], names: list[str]) -> list[Path]:
    """Every report of ``table`` into ``out_dir``, then its data file, recording ``names`` as the reporters
    that write this board."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for reporter in reporters:
        written += reporter.write(table, out_dir)
    return [*written, write_board_data(table, out_dir, names)]


# -- reading ---------------------------------------------------------------------------------------
def read_board_data(board_dir: str | Path) -> dict[str, Any]:
    """The data file's record; a missing, unreadable or other-format file is a one-line ``UserError``."""
    board = Path(board_dir)
    path = board / BOARD_DATA
    fix = f"regenerate the board with this version: unlearn-bench report --runs RUN_DIR... --out {board}"
    if not board.is_dir():
        raise UserError(f"{board} is not a directory; give a board directory (the --out of a report)")
    if not path.exists():
        raise UserError(f"{board} has no {BOARD_DATA} (written before boards carried their data); {fix}")
    try:
        record = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is corrupt ({type(err).__name__}); {fix}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else None
        raise UserError(f"{path} has data format {found}; this version reads format {FORMAT}; {fix}")
    return record


def table_of(record: dict[str, Any]) -> ResultTable:
    """The ``ResultTable`` a data file's record was written from."""
    return table_from_records(record["bases"], record["cells"],
                              sources=Sources(record["sources"], record["samples"]),
                              utility_budget=record["utility_budget"], attacks=record["attacks"],
                              tuning=record["tuning"], resamples=record["resamples"],
                              bootstrap_seed=record["bootstrap_seed"])


def load_board_data(board_dir: str | Path) -> ResultTable:
    """Rebuild a board's table from its data file alone (its runs are never read)."""
    return table_of(read_board_data(board_dir))


# -- rescoring -------------------------------------------------------------------------------------
def _files(root: Path) -> set[str]:
    """Relative paths of the files under ``root`` (hidden ones aside: an interrupted write's temp file)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def compare(board: Path, regenerated: Path, every_committed_file: bool = True) -> dict[str, str]:
    """Per file, by relative path: identical, differs, missing from the board, or (with
    ``every_committed_file``) in the board but not regenerated."""
    committed, fresh = _files(board), _files(regenerated)
    status: dict[str, str] = {}
    for name in sorted(fresh | (committed if every_committed_file else set())):
        if name not in committed:
            status[name] = MISSING
        elif name not in fresh:
            status[name] = NOT_REGENERATED
        else:
            same = (board / name).read_bytes() == (regenerated / name).read_bytes()
            status[name] = IDENTICAL if same else DIFFERS
    return status


def _target(board: Path, out: str | Path | None, tmp: str) -> Path:
    """Where the regenerated board goes: a folder named as the board (reports title themselves after their
    folder), under ``out`` or a temporary directory. Never over anything already written."""
    parent = Path(out if out is not None else tmp)
    if parent.exists() and not parent.is_dir():
        raise UserError(f"--out {parent} is a file, not a directory; give a directory for the regenerated board")
    target = parent / board.resolve().name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} already exists and is not empty; give --out a directory without a "
                        f"'{target.name}' folder in it (the regenerated board goes to --out/{target.name})")
    return target


def rescore_files(board_dir: str | Path, out: str | Path | None = None,
                  reporter_names: list[str] | None = None) -> dict[str, str]:
    """Render the board again from its data file (the reporters that wrote it, or ``reporter_names``) into
    ``out/<board name>`` (default: a temporary directory, removed after) and compare every file with the board.
    With the board's own reporters, a committed file no reporter wrote counts as a difference too."""
    board = Path(board_dir)
    record = read_board_data(board)
    table = table_of(record)
    _, reporters = make_reporters(reporter_names or record["reporters"] or None)
    _ = table.scoring  # computed (and any refusal raised) before anything is written
    with tempfile.TemporaryDirectory(prefix="rescore-") as tmp:
        target = _target(board, out, tmp)
        write_board(table, target, reporters, record["reporters"])
        return compare(board, target, every_committed_file=not reporter_names)


def rescore(board_dir: str | Path, out: str | Path | None = None,
            reporter_names: list[str] | None = None) -> list[str]:
    """The board's files (relative paths) that a rescore does not regenerate identically: empty = audited."""
    status = rescore_files(board_dir, out, reporter_names)
    return [name for name, s in status.items() if s != IDENTICAL]


__all__ = ["BOARD_DATA", "FORMAT", "SIZE_LIMIT", "compare", "load_board_data", "make_reporters", "read_board_data",
           "rescore", "rescore_files", "write_board", "write_board_data"]
