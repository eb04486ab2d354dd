"""The on-disk results of a sweep: one JSON line per problem, one ``.npz`` per critic.

Layout of a sweep folder ``OUT``::

    OUT/results.jsonl        one JSON object per finished problem (schema below)
    OUT/critics/000012.npz   the critic of problem 12 ("critic"; "flow" with save_flow=True)
    OUT/summary.md           a table of the results (written by the command line)

Writing is crash-safe: the ``.npz`` is written to a temporary name and renamed, and only then
is the problem's line appended and flushed to the disk (``fsync``), by the client alone. So a
line in ``results.jsonl`` means its arrays are complete, a crash or Ctrl-C loses only the
problems still running, and a line cut by a crash (the last one) is dropped when the folder
is opened again. A resumed sweep skips the problems that have a record, except errors of
stage ``"cluster"`` (tasks lost with their workers), which it runs again.

A record of a solved problem::

    {"index": 12, "id": "label or null", "key": "fingerprint", "status": "ok",
     "mu": "spec or null", "nu": "spec or null",
     "grid": {"bounds": [[-4, 4], [-4, 4]], "shape": [128, 128]}, "norm": "euclidean",
     "w1": ..., "lower": ..., "upper": ..., "gap": ..., "relative_gap": ..., "tol": ...,
     "iterations": ..., "converged": true, "solve_status": "converged", "message": "...",
     "seconds": ..., "backend": "numba", "worker": "tcp://...", "warnings": [],
     "arrays": "critics/000012.npz", "run": "run id"}

and of a failed one::

    {"index": 3, "id": null, "key": "...", "status": "error", "stage": "spec",
     "error": "ValueError", "message": "mu: invalid distribution ...", "mu": ..., "nu": ...,
     "run": "run id"}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RESULTS", "SweepStore", "load_arrays", "read_records"]

RESULTS = "results.jsonl"
ARRAYS = "critics"
SUMMARY = "summary.md"


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _parse_lines(path: Path) -> tuple[list[dict], int, int]:
    """The records of a results file, the byte length of its complete lines (a last line cut
    by a crash has no newline and is not counted) and the number of complete lines that are
    not records (skipped)."""
    records: list[dict] = []
    good = bad = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            good += len(raw)
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                rec = None
            if isinstance(rec, dict) and isinstance(rec.get("index"), int):
                records.append(rec)
            elif raw.strip():
                bad += 1
    return records, good, bad


def _latest(records: list[dict]) -> dict[int, dict]:
    """The last record of each problem."""
    out: dict[int, dict] = {}
    for rec in records:
        out[int(rec["index"])] = rec
    return out


def read_records(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a sweep folder, one per problem (its latest), sorted by index.

    Parameters
    ----------
    out : str or path-like
        The sweep folder (holding ``results.jsonl``).

    Returns
    -------
    list of dict
        The records (schema in :mod:`otgrid.distributed.store`).

    Raises
    ------
    FileNotFoundError
        When the folder has no ``results.jsonl``.
    """
    path = Path(out) / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: out must be a sweep folder "
                                "written by otgrid.distributed.sweep or 'otgrid sweep'.")
    records, _, _ = _parse_lines(path)
    return [rec for _, rec in sorted(_latest(records).items())]


def load_arrays(out: str | os.PathLike, index: int) -> dict[str, np.ndarray]:
    """The arrays saved for problem ``index`` of a sweep folder.

    Returns
    -------
    dict
        ``"critic"`` (shape ``grid.shape``) and, when the sweep saved flows, ``"flow"``
        (shape ``(ndim, *grid.shape)``).

    Raises
    ------
    KeyError
        When the problem has no arrays (it failed, or is not done).
    """
    path = Path(out) / ARRAYS / f"{int(index):06d}.npz"
    if not path.is_file():
        raise KeyError(f"problem {index} has no arrays in {str(out)!r} (it failed or is not "
                       "solved yet; see read_records).")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class SweepStore:
    """The results folder of one sweep run, opened for appending (client side)."""

    def __init__(self, out: str | os.PathLike, *, save_flow: bool = False) -> None:
        self.out = Path(out)
        self.save_flow = bool(save_flow)
        self.done: dict[int, dict] = {}
        self._fh: Any = None
        self._lock: Any = None

    @contextlib.contextmanager
    def opened(self) -> Iterator[SweepStore]:
        """Create or reopen the folder (dropping a cut last line), hold it for this process
        alone, and compact the file (one line per problem) when done."""
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"out {str(self.out)!r} is a file; give a folder for the results.")
        (self.out / ARRAYS).mkdir(parents=True, exist_ok=True)
        self._acquire()
        path = self.out / RESULTS
        try:
            if path.exists():
                records, good, bad = _parse_lines(path)
                if good != path.stat().st_size:
                    with path.open("r+b") as fh:
                        fh.truncate(good)
                self.done = _latest(records)
                if bad or len(records) != len(self.done):
                    self._compact(force=True)
            self._fh = path.open("a", encoding="utf-8")
            yield self
        finally:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
                self._compact()
            self._release()

    def _acquire(self) -> None:
        """An exclusive lock on ``OUT/.lock`` (released by the system if this process dies)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        self._lock = (self.out / ".lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise ValueError(f"out {str(self.out)!r} is in use by another sweep; wait for it, "
                             "or give another folder.") from None

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _compact(self, force: bool = False) -> None:
        """Rewrite the results with one line per problem (the latest), atomically."""
        path = self.out / RESULTS
        records, _, _ = _parse_lines(path) if path.exists() else ([], 0, 0)
        latest = _latest(records)
        if len(latest) == len(records) and not force:
            return
        tmp = path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for _, rec in sorted(latest.items()):
                fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def write(self, record: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Save the arrays (atomically), then append the record and flush it to the disk.

        Parameters
        ----------
        record : dict
            The problem's record (``"index"`` required; an ``"arrays"`` path is added).
        arrays : dict of str to ndarray, optional
            Saved to ``critics/NNNNNN.npz``.
        """
        if arrays:
            name = f"{int(record['index']):06d}.npz"
            tmp = self.out / ARRAYS / f".{name}.tmp"
            with tmp.open("wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.out / ARRAYS / name)
            record = {**record, "arrays": f"{ARRAYS}/{name}"}
        line = json.dumps({k: _json_value(v) for k, v in record.items()})
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done[int(record["index"])] = record


def result_record(result: Any) -> dict[str, Any]:
    """The fields of a :class:`~otgrid.critic.result.CriticResult` that a record keeps.

    Parameters
    ----------
    result : CriticResult

    Returns
    -------
    dict
        ``grid``, ``norm``, ``w1``, ``lower``, ``upper``, ``gap``, ``relative_gap``, ``tol``,
        ``iterations``, ``converged``, ``solve_status``, ``message``, ``backend``.
    """
    return {"grid": {"bounds": [list(b) for b in result.grid.bounds],
                     "shape": list(result.grid.shape)},
            "norm": result.norm, "w1": result.w1, "lower": result.lower, "upper": result.upper,
            "gap": result.gap, "relative_gap": result.relative_gap, "tol": result.tol,
            "iterations": int(result.iterations), "converged": bool(result.converged),
            "solve_status": result.status, "message": result.message,
            "backend": result.backend}


def write_summary(out: str | os.PathLike, records: list[dict[str, Any]], total: int) -> Path:
    """Write a Markdown table of the records to ``OUT/summary.md`` (atomically).

    Parameters
    ----------
    out : str or path-like
        The sweep folder.
    records : list of dict
        The records (:func:`read_records`).
    total : int
        Problems in the sweep (for the title).

    Returns
    -------
    Path
        The summary's path.
    """
    ok = [r for r in records if r.get("status") == "ok"]
    lines = [f"# Sweep results: {len(records)} of {total} problems done, {len(ok)} solved, "
             f"{len(records) - len(ok)} failed", "",
             "| # | id | mu | nu | shape | W | lower | upper | rel. gap | iterations | "
             "converged | seconds | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        cells = [str(r["index"]), r.get("id") or "", r.get("mu") or "", r.get("nu") or ""]
        if r.get("status") == "ok":
            cells += [" x ".join(map(str, r["grid"]["shape"])), f"{r['w1']:.8g}",
                      f"{r['lower']:.8g}", f"{r['upper']:.8g}", f"{r['relative_gap']:.2e}",
                      str(r["iterations"]), str(r["converged"]), f"{r['seconds']:.3g}",
                      r["solve_status"]]
        else:
            cells += [""] * 8 + [f"error ({r.get('stage')}): {r.get('error')}: "
                                 f"{r.get('message')}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    path = Path(out) / SUMMARY
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
