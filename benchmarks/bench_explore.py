"""Explorer benchmark: update latency of the critic view, cold and warm-started after a drag.

Problem: the page's "Two Gaussians (2D)" preset, mu = N((-1.5, 0), 0.6^2 I) and
nu = N((1.5, 0.5), 0.8^2 I) on [-6, 6]^2 (outside mass renormalised, as the page does), the
page's default tolerance 1e-4, Euclidean norm, backend auto, at 64^2, 128^2 and 256^2 cells.

1. **Server** (HTTP, no browser): the time from the POST of a solve request to the poll that
   returns the finished result (what the page needs to draw), split into masses, solve and
   payload (the server's own timing); *cold* (a new grid: no warm start) and *drag* (mu's
   centre moved by 0.1 per request, as a mouse drag sends it, each solve warm-started from
   the previous one on the same grid). Median, minimum and maximum over the repetitions.
2. **Browser** (needs Chromium, chromedriver and selenium): the same drag performed in the page
   (mu's mode moved by 0.1 through the page's own drag handler), timed by the page from the
   request to the new W drawn in its label (``data-ms`` of the label).

Run from the repository root::

    python benchmarks/bench_explore.py                    # full run -> /tmp/otgrid_bench_explore
    python benchmarks/bench_explore.py --quick            # smoke test
    python benchmarks/bench_explore.py --out-dir benchmarks/results   # the committed results

Writes ``explore.json`` and ``explore.md`` into ``--out-dir``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

import otgrid as og
from otgrid.explore.server import start_server

MU, NU = [-1.5, 0.0], [1.5, 0.5]
STD_MU, STD_NU = 0.6, 0.8
BOUNDS = [[-6.0, 6.0], [-6.0, 6.0]]
TOL = 1e-4
STEP = 0.1


def _post(url: str, path: str, payload: dict) -> dict:
    req = urllib.request.Request(url + path.lstrip("/"), data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def _get(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path.lstrip("/"), timeout=600) as r:
        body = r.read()
    out = json.loads(body)
    out["_bytes"] = len(body)
    return out


def _request(shape: int, x_mu: float) -> dict:
    return {"mu": {"modes": [{"x": [x_mu, MU[1]], "std": STD_MU, "w": 1}]},
            "nu": {"modes": [{"x": NU, "std": STD_NU, "w": 1}]},
            "shape": shape, "bounds": BOUNDS, "tol": TOL, "warm_start": True}


def _timed_solve(url: str, session: str, req: dict) -> tuple[float, dict]:
    """Seconds from the POST to the poll that returns the result, and the result."""
    t0 = time.perf_counter()
    job = _post(url, "/api/critic/solve", {"session": session, **req})["job"]
    while True:
        snap = _get(url, f"/api/job?session={session}&view=critic&job={job}")
        if snap["state"] not in ("queued", "running"):
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    if snap["state"] != "done":
        raise RuntimeError(f"solve ended in state {snap['state']}: {snap.get('error')}")
    snap["result"]["_bytes"] = snap["_bytes"]
    return elapsed, snap["result"]


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def bench_server(url: str, shapes: list[int], reps: int, drags: int) -> list[dict]:
    rows = []
    for n in shapes:
        cold, parts = [], []
        for r in range(reps):  # a fresh session each time: no warm start
            t, res = _timed_solve(url, f"bench-cold-{n}-{r}", _request(n, MU[0]))
            cold.append(t)
            parts.append(res["timing"])
        session = f"bench-drag-{n}"
        _timed_solve(url, session, _request(n, MU[0]))  # the grid the drag starts on
        drag, dparts, iters, sizes = [], [], [], []
        for k in range(1, drags + 1):
            t, res = _timed_solve(url, session, _request(n, MU[0] + STEP * k))
            assert res["timing"]["warm_start"]
            drag.append(t)
            dparts.append(res["timing"])
            iters.append(res["iterations"])
            sizes.append(res["_bytes"])
        rows.append({"shape": n, "cold": _stats(cold), "drag": _stats(drag),
                     "cold_solve": statistics.median(p["solve"] for p in parts),
                     "drag_masses": statistics.median(p["masses"] for p in dparts),
                     "drag_solve": statistics.median(p["solve"] for p in dparts),
                     "drag_payload": statistics.median(p["payload"] for p in dparts),
                     "drag_iterations": statistics.median(iters),
                     "drag_kilobytes": statistics.median(sizes) / 1000})
        print(f"server {n}^2: cold {rows[-1]['cold']['median']:.3f} s, drag "
              f"{rows[-1]['drag']['median']:.3f} s", flush=True)
    return rows


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        return None, None
    profile = tempfile.mkdtemp(prefix="otgrid-bench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--window-size=1500,1100",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts), profile


def _wait(drv, script: str, timeout: float = 600.0) -> None:
    t0 = time.monotonic()
    while not drv.execute_script(f"return {script};"):
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"timed out waiting for {script}")
        time.sleep(0.01)


def bench_browser(url: str, shapes: list[int], drags: int) -> list[dict]:
    try:
        drv, profile = _browser()
    except ImportError:
        print("browser: selenium is not installed; skipped", flush=True)
        return []
    if drv is None:
        print("browser: no Chromium/chromedriver; skipped", flush=True)
        return []
    rows = []
    try:
        drv.get(url + "?preset=gaussians-2d")
        _wait(drv, "document.body.dataset.ready === '1'")
        for n in shapes:
            drv.execute_script(f"document.getElementById('shape').value = {n};"
                               "document.getElementById('bounds').value = '-6 6 -6 6';"
                               "document.getElementById('solve').click();")
            _wait(drv, f"document.getElementById('w-label').dataset.shape === '{n}' && "
                       "document.getElementById('w-label').dataset.state === 'done' && !C.inflight")
            times, drawn = [], []
            for _ in range(drags):
                job = drv.execute_script("return document.getElementById('w-label').dataset.job;")
                # what the drag handler does on a mouse move: move the mode, re-solve
                drv.execute_script(f"C.modes.mu[0].x[0] += {STEP}; solve(true);")
                _wait(drv, "document.getElementById('w-label').dataset.state === 'done' && "
                           f"document.getElementById('w-label').dataset.job !== '{job}' && "
                           "!C.inflight")
                ms, drawn_ms = drv.execute_script(
                    "const d = document.getElementById('w-label').dataset;"
                    "return [d.ms, d.drawnMs];")
                times.append(float(ms) / 1000)
                drawn.append(float(drawn_ms) / 1000)
            rows.append({"shape": n, "drag": _stats(times), "drawn": _stats(drawn)})
            print(f"browser {n}^2: drag to W shown {rows[-1]['drag']['median']:.3f} s, "
                  f"figures drawn {rows[-1]['drawn']['median']:.3f} s", flush=True)
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return rows


def _machine() -> dict:
    import numba
    import scipy

    return {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "otgrid": og.__version__,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def markdown(out: dict) -> str:
    m = out["machine"]
    lines = ["# Explorer benchmark: update latency of the critic view", "",
             "Problem: the page's *Two Gaussians (2D)* preset, μ = N((−1.5, 0), 0.6² I), "
             "ν = N((1.5, 0.5), 0.8² I) on [−6, 6]², tol 1e-4 (the page's default), Euclidean "
             "norm, backend auto (Numba here). *cold*: a new grid, no warm start. *drag*: μ's "
             f"centre moved by {STEP} per request, each solve warm-started from the previous "
             "one on the same grid.", "",
             f"Machine: {m['cpu']}, {m['cpus']} CPUs, load average at start "
             f"{', '.join(map(str, m['load_average']))} (a shared machine: timings are "
             f"indicative), Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}, "
             f"scipy {m['scipy']}, otgrid {m['otgrid']}. Date {m['date']}.", "",
             "## Server: request to result (HTTP, no browser)", "",
             "Seconds from the POST of the request to the poll that returns the result; "
             "median (min–max). The split is the server's own timing of a drag update.", "",
             "| grid | cold | drag (warm start) | drag: masses | drag: solve | drag: payload "
             "| drag: iterations | result size |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in out["server"]:
        c, d = r["cold"], r["drag"]
        lines.append(f"| {r['shape']}² | {c['median']:.3f} ({c['min']:.3f}–{c['max']:.3f}) "
                     f"| {d['median']:.3f} ({d['min']:.3f}–{d['max']:.3f}) "
                     f"| {r['drag_masses']:.4f} | {r['drag_solve']:.3f} "
                     f"| {r['drag_payload']:.4f} | {r['drag_iterations']:.0f} "
                     f"| {r['drag_kilobytes']:.0f} kB |")
    lines += ["", "## Browser: drag to new W displayed (headless Chromium)", ""]
    if out["browser"]:
        lines += ["Seconds from the page's request to the new W written in its label, and to "
                  "every figure redrawn, measured by the page; median (min–max).", "",
                  "| grid | drag: W shown | drag: figures drawn |", "|---|---:|---:|"]
        for r in out["browser"]:
            d, f = r["drag"], r["drawn"]
            lines.append(f"| {r['shape']}² | {d['median']:.3f} ({d['min']:.3f}–"
                         f"{d['max']:.3f}) | {f['median']:.3f} ({f['min']:.3f}–"
                         f"{f['max']:.3f}) |")
    else:
        lines.append("Not measured (no browser found).")
    lines += ["", f"Command: `{out['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 64^2 and 128^2, few reps")
    ap.add_argument("--no-browser", action="store_true", help="server timings only")
    ap.add_argument("--out-dir", default=str(Path(tempfile.gettempdir())
                                             / "otgrid_bench_explore"))
    args = ap.parse_args(argv)
    shapes = [64, 128] if args.quick else [64, 128, 256]
    reps, drags = (1, 3) if args.quick else (3, 10)
    server, url = start_server()
    try:
        out = {"machine": _machine(), "tol": TOL, "step": STEP,
               "command": "python benchmarks/bench_explore.py " + " ".join(argv or sys.argv[1:]),
               "server": bench_server(url, shapes, reps, drags),
               "browser": [] if args.no_browser else bench_browser(url, shapes, drags)}
    finally:
        server.app.close()
        server.shutdown()
        server.server_close()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "explore.json").write_text(json.dumps(out, indent=2) + "\n")
    (out_dir / "explore.md").write_text(markdown(out))
    print(f"wrote {out_dir / 'explore.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
