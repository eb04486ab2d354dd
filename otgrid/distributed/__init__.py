"""Sweeps on a cluster: many exact critics (or audits) at once, on Dask.

Needs the ``dask`` extra (``pip install 'otgrid[dask]'``: ``dask`` and ``distributed``).
The scale-out engine is Dask's distributed scheduler: an embedded ``LocalCluster`` (one
single-threaded worker process per core) by default, or any scheduler address for a real
cluster (``client="tcp://host:8786"``).

- :func:`solve_many` solves problems ``(mu, nu)`` (arrays, distributions or spec strings, or
  :class:`ProblemSpec`), in batches for the batched solver, and returns the results in input
  order (a :class:`ProblemError` in the place of a problem that failed).
- :func:`sweep` does the same but streams every finished problem to a folder (JSON lines and
  ``.npz`` critics, :mod:`otgrid.distributed.store`); a crash loses nothing that finished,
  and running it again resumes. ``otgrid sweep PROBLEMS.jsonl --out DIR`` is its command.
- :func:`audit_many` audits many critics (modules, callables or state-dict files) against
  one exact critic solved once and shared with the workers.

How the parts call each other:

- ``api`` (the three calls) turns the input into :class:`problems.Problem` objects
  (``problems.as_problems``: specs, pairs, fingerprints), opens the client and plans the
  batches (``cluster.connect``, ``cluster.auto_batch_size``), and hands the tasks to
  ``cluster.run_tasks``, which submits them (with Dask's ``retries=``) and calls back in
  completion order (progress line, cancellation on Ctrl-C or ``limit``);
- each task runs ``worker.solve_batch`` (or ``worker.audit_one``, after ``worker.exact_solve``)
  on a worker: it limits the Numba/BLAS threads to the worker's share of the machine,
  discretises the specs there (``Problem.materialize``), solves each group of one grid with
  one batched :func:`otgrid.solve_critic` call (one by one if that raises, to isolate the
  bad problem) and returns a ``worker.Solved`` or a :class:`ProblemError` per problem;
- :func:`sweep` writes each outcome with ``store.SweepStore`` (arrays first, then the JSON
  line, flushed) and skips, on a rerun, the problems that already have a record;
  ``critics.load_state_dict_critic`` reads critic files on the workers for ``audit_many``.

Imports: ``otgrid.grid``, ``otgrid.critic``, ``otgrid.auditing`` and the shared helpers only;
``dask``/``distributed`` are imported when a call needs them.
"""

from __future__ import annotations

from otgrid.distributed.api import SweepSummary, audit_many, solve_many, sweep
from otgrid.distributed.problems import ProblemError, ProblemSpec, read_problems
from otgrid.distributed.store import load_arrays, read_records

__all__ = [
    "ProblemError",
    "ProblemSpec",
    "SweepSummary",
    "audit_many",
    "load_arrays",
    "read_problems",
    "read_records",
    "solve_many",
    "sweep",
]
