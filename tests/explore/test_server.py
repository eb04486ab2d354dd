"""The explorer's server without a browser: endpoints, sessions, cancellation, limits, exports.

Every W the server reports is checked against an independent computation of the same
problem: ``og.solve_critic`` at a tight tolerance, and in 1D the closed form
``dx sum |F_mu - F_nu|``.
"""

from __future__ import annotations

import http.client
import io
import json
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import otgrid as og
from otgrid.explore.problems import build_problem, discretize, make_grid
from otgrid.grid.spec import parse_distribution


def _request(url: str, path: str, data: bytes | None = None, ctype: str = "application/json",
             headers: dict | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url + path.lstrip("/"), data=data,
                                 headers={"Content-Type": ctype, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def post(url: str, path: str, payload: dict) -> tuple[int, dict]:
    status, body, _ = _request(url, path, json.dumps(payload).encode())
    return status, json.loads(body)


def get(url: str, path: str) -> tuple[int, dict]:
    status, body, _ = _request(url, path)
    return status, json.loads(body)


def wait_job(url: str, session: str, view: str, job: str, timeout: float = 60.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        _, snap = get(url, f"/api/job?session={session}&view={view}&job={job}")
        if snap["state"] not in ("queued", "running"):
            return snap
        time.sleep(0.03)
    raise AssertionError(f"job {job} still running after {timeout} s")


def solve(url: str, session: str, **req) -> dict:
    status, body = post(url, "/api/critic/solve", {"session": session, **req})
    assert status == 200, body
    return wait_job(url, session, "critic", body["job"])


def reference(mu: str, nu: str, shape: int, bounds=None, tol: float = 1e-6
              ) -> tuple[og.CriticResult, np.ndarray, np.ndarray]:
    """The same problem solved independently of the server, at a tight tolerance."""
    problem = build_problem({"spec": mu}, {"spec": nu})
    grid = make_grid(problem, shape, bounds)
    a, b, _ = discretize(problem, grid)
    return og.solve_critic(a, b, grid, tol=tol), a, b


def test_config_lists_presets_colormaps_and_backends(server):
    status, cfg = get(server, "/api/config")
    assert status == 200
    assert {"8gaussians", "25gaussians", "swissroll", "parallel-lines", "funnels",
            "gaussians-1d", "mixture-2d"} <= set(cfg["presets"])
    assert len(cfg["colormaps"]["viridis"]) == 256
    assert cfg["backends"]["numpy"] == "available"
    assert "normal(mean, cov)" in cfg["grammar"]


def test_page_and_static_files_are_served_and_nothing_else(server):
    status, body, ctype = _request(server, "/")
    assert status == 200 and b"otgrid explore" in body and ctype.startswith("text/html")
    status, body, ctype = _request(server, "/static/explore.js")
    assert status == 200 and ctype.startswith("text/javascript")
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/jobs.py",
                 "/static/.hidden.js", "/nothing"):
        assert _request(server, path)[0] == 404, path


def test_1d_solve_matches_solve_critic_and_the_closed_form(server):
    snap = solve(server, "sess1d-0001", mu={"spec": "normal(-1, std=0.6)"},
                 nu={"spec": "mixture(0.3*normal(-2, std=0.4), 0.7*normal(1.5, std=0.8))"},
                 shape=256, tol=1e-6)
    assert snap["state"] == "done", snap
    res = snap["result"]
    ref, a, b = reference("normal(-1, std=0.6)",
                          "mixture(0.3*normal(-2, std=0.4), 0.7*normal(1.5, std=0.8))", 256)
    closed = ref.grid.dx[0] * math.fsum(np.abs(np.cumsum(a) - np.cumsum(b)))
    assert res["lower"] <= ref.upper and ref.lower <= res["upper"]
    assert res["lower"] - 1e-12 <= closed <= res["upper"] + 1e-12
    np.testing.assert_allclose(res["closed_form"], closed, rtol=1e-12)
    np.testing.assert_allclose(res["w"], ref.w1, rtol=1e-5)
    assert len(res["critic"]) == 256 and res["ndim"] == 1


def test_2d_solve_matches_solve_critic_and_sends_the_pictures(server):
    snap = solve(server, "sess2d-0001", mu={"spec": "8gaussians"},
                 nu={"spec": "normal([0, 0], 1)"}, shape=48, tol=1e-4)
    res = snap["result"]
    ref, _, _ = reference("8gaussians", "normal([0, 0], 1)", 48)
    assert res["lower"] <= ref.upper and ref.lower <= res["upper"]
    np.testing.assert_allclose(res["w"], ref.w1, rtol=1e-4)
    img = res["critic"]
    assert (img["width"], img["height"]) == (48, 48)
    assert len(__import__("base64").b64decode(img["data"])) == 48 * 48
    assert res["contours"] and res["arrows"] and len(res["modes"]["mu"]) == 8
    assert res["grad_norm_max"] <= 1 + 1e-6  # the critic is feasible: |Df| <= 1


def test_known_values_of_the_pairs_are_reported(server):
    res = solve(server, "sesspair-001", mu={"spec": "parallel_lines(0.5)"}, nu={"spec": ""},
                shape=64, bounds=[[-0.5, 1.0], [-0.25, 1.25]], tol=1e-6)["result"]
    assert res["known"]["value"] == 0.5
    # both lines lie on cell boundaries; the grid W is within a cell of |theta|
    assert abs(res["w"] - 0.5) <= 1.5 / 64 * 1.5


def test_bad_spec_gives_the_parser_message_and_field(server):
    status, body = post(server, "/api/critic/solve", {"session": "sessbad-0001",
                        "mu": {"spec": "normal(0, 1)"}, "nu": {"spec": "normal(1,"}})
    assert status == 400
    with pytest.raises(ValueError) as parser:
        parse_distribution("normal(1,")
    assert body["error"]["field"] == "nu"
    assert body["error"]["message"] == f"nu: {parser.value}"
    status, body = post(server, "/api/critic/solve", {"session": "sessbad-0001",
                        "mu": {"spec": "/etc/passwd.npy"}, "nu": {"spec": "normal(1, 1)"}})
    assert status == 400 and "not read by the explorer" in body["error"]["message"]
    for bad, field in (({"shape": 4096}, "shape"), ({"tol": 2}, "tol"),
                       ({"norm": "max"}, "norm"), ({"bounds": [[1, 0]]}, "bounds")):
        status, body = post(server, "/api/critic/solve", {"session": "sessbad-0001",
                            "mu": {"spec": "normal([0, 0], 1)"},
                            "nu": {"spec": "normal([1, 0], 1)"}, **bad})
        assert status == 400 and body["error"]["field"] == field, (bad, body)


def test_memory_limit_refuses_a_grid_before_solving(server, monkeypatch):
    import otgrid.critic.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: 32 * 2 ** 20)
    status, body = post(server, "/api/critic/solve", {"session": "sessmem-0001",
                        "mu": {"spec": "normal([0, 0], 1)"}, "nu": {"spec": "normal([1, 0], 1)"},
                        "shape": 512})
    assert status == 400 and body["error"]["field"] == "shape"
    assert "GiB" in body["error"]["message"] and "cells per axis or fewer" in \
        body["error"]["message"]


def test_time_limit_stops_a_solve_with_valid_bounds(server):
    snap = solve(server, "sesstime-001", mu={"spec": "25gaussians"},
                 nu={"spec": "normal([0, 0], 1)"}, shape=128, tol=1e-10, time_limit=0.3)
    res = snap["result"]
    assert res["status"] == "time_limit" and not res["converged"]
    assert 0 < res["lower"] <= res["upper"]
    assert snap["elapsed"] < 10


def test_cancel_stops_a_running_solve(server):
    session = "sesscancel-1"
    status, body = post(server, "/api/critic/solve", {"session": session,
                        "mu": {"spec": "normal([0, 0], 1)"}, "nu": {"spec": "normal([1, 0], 2)"},
                        "shape": 256, "tol": 1e-9})
    assert status == 200
    time.sleep(0.5)
    t0 = time.monotonic()
    assert post(server, "/api/cancel", {"session": session, "view": "critic"})[0] == 200
    snap = wait_job(server, session, "critic", body["job"], timeout=30)
    assert snap["state"] == "cancelled"
    assert time.monotonic() - t0 < 10


def test_a_new_request_supersedes_the_running_one(server):
    session = "sesssuper-01"
    first = post(server, "/api/critic/solve", {"session": session,
                 "mu": {"spec": "normal([0, 0], 1)"}, "nu": {"spec": "normal([1, 0], 2)"},
                 "shape": 256, "tol": 1e-9})[1]["job"]
    second = post(server, "/api/critic/solve", {"session": session,
                  "mu": {"spec": "normal(0, 1)"}, "nu": {"spec": "normal(1, 1)"},
                  "shape": 64})[1]["job"]
    assert wait_job(server, session, "critic", second)["state"] == "done"
    status, body = get(server, f"/api/job?session={session}&view=critic&job={first}")
    assert status == 400 and body["error"]["field"] == "job"


def test_sessions_are_isolated(server):
    a, b = "sessionA-0001", "sessionB-0001"
    ra = solve(server, a, mu={"spec": "normal(0, 1)"}, nu={"spec": "normal(1, 1)"}, shape=128,
               bounds=[[-6, 7]], tol=1e-8)["result"]
    rb = solve(server, b, mu={"spec": "normal(0, 1)"}, nu={"spec": "normal(3, 1)"}, shape=128,
               bounds=[[-6, 7]], tol=1e-8)["result"]
    np.testing.assert_allclose([ra["w"], rb["w"]], [1.0, 3.0], rtol=2e-3)
    # B's job is not A's; A's export is A's problem
    job_b = post(server, "/api/critic/solve", {"session": b, "mu": {"spec": "normal(0, 1)"},
                 "nu": {"spec": "normal(2, 1)"}, "shape": 32})[1]["job"]
    assert get(server, f"/api/job?session={a}&view=critic&job={job_b}")[0] == 400
    status, body, _ = _request(server, f"/api/export?session={a}&view=critic&format=json")
    assert status == 200 and json.loads(body)["nu"] == "normal(1, 1)"
    assert get(server, "/api/job?session=bad&view=critic")[0] == 400


def test_warm_start_after_a_small_move(server):
    session = "sesswarm-001"
    kw = dict(shape=48, bounds=[[-5, 5], [-5, 5]], tol=1e-4, warm_start=True)
    first = solve(server, session, mu={"modes": [{"x": [-1.5, 0], "std": 0.6, "w": 1}]},
                  nu={"modes": [{"x": [1.5, 0.5], "std": 0.9, "w": 1}]}, **kw)["result"]
    second = solve(server, session, mu={"modes": [{"x": [-1.3, 0.1], "std": 0.6, "w": 1}]},
                   nu={"modes": [{"x": [1.5, 0.5], "std": 0.9, "w": 1}]}, **kw)["result"]
    assert not first["timing"]["warm_start"] and second["timing"]["warm_start"]
    assert second["specs"]["mu"] == "normal([-1.3, 0.1], std=0.6)"
    ref, _, _ = reference("normal([-1.3, 0.1], std=0.6)", "normal([1.5, 0.5], std=0.9)", 48,
                          [[-5, 5], [-5, 5]])
    assert second["lower"] <= ref.upper and ref.lower <= second["upper"]
    # a new spec on the same grid starts cold (the page asks for warm starts while dragging)
    third = solve(server, session, mu={"spec": "8gaussians"}, nu={"spec": "normal([0, 0], 1)"},
                  shape=48, bounds=[[-5, 5], [-5, 5]], tol=1e-4)["result"]
    assert not third["timing"]["warm_start"]


def test_exports_png_and_json(server):
    session = "sessexport-1"
    assert get(server, f"/api/export?session={session}&view=critic&format=png")[0] == 400
    res = solve(server, session, mu={"spec": "normal([0, 0], 1)"},
                nu={"spec": "normal([1, 1], 1)"}, shape=32)["result"]
    status, body, ctype = _request(server, f"/api/export?session={session}&view=critic"
                                           "&format=png")
    assert status == 200 and ctype == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"
    status, body, ctype = _request(server, f"/api/export?session={session}&view=critic"
                                           "&format=json")
    numbers = json.loads(body)
    assert ctype == "application/json" and numbers["w"] == res["w"]
    assert numbers["history"]["upper"][-1] >= numbers["lower"]
    assert _request(server, f"/api/export?session={session}&view=critic&format=svg")[0] == 400


def test_request_hygiene(server):
    # not JSON, too large, wrong content type, foreign Host header
    assert _request(server, "/api/critic/solve", b"{", "application/json")[0] == 400
    host, port = server.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/api/critic/solve")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str((1 << 20) + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert _request(server, "/api/critic/solve", b"{}", "text/plain")[0] == 400
    assert _request(server, "/api/config", headers={"Host": "evil.example:80"})[0] == 403
    assert _request(server, "/api/audit/upload?session=sesshyg-0001", b"x", "text/plain")[0] \
        == 400


def test_sco_steps_advance_and_stop(server):
    session = "sesssco-0001"
    status, body = post(server, "/api/sco/start", {"session": session,
                        "target": {"spec": "normal(1, std=0.5)"}, "loc": -1, "scale": 1,
                        "shape": 128, "steps": 40, "wgan": False})
    assert status == 200, body

    def state(since: int = 0) -> dict:
        return get(server, f"/api/sco/state?session={session}&since={since}")[1]

    t0 = time.monotonic()
    while state()["steps"] < 0 and time.monotonic() - t0 < 30:
        time.sleep(0.05)
    s = state()
    assert s["steps"] == 0 and s["paused"] and s["view"]["ndim"] == 1
    post(server, "/api/sco/control", {"session": session, "action": "step", "n": 2})
    while state()["steps"] < 2 and time.monotonic() - t0 < 30:
        time.sleep(0.05)
    time.sleep(0.3)
    s = state()
    assert s["steps"] == 2 and s["paused"]
    rows = s["records"]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[2]["params"] != rows[0]["params"]
    for r in rows:
        assert r["lower"] <= r["upper"]
    # the certified W of the recorded parameters, independently
    grid = og.Grid(s["view"]["bounds"], s["view"]["shape"])
    loc, scale = rows[2]["params"]
    target = grid.discretize(og.Normal(1.0, 0.25), outside="renormalize", outside_tol=1.0)
    gen = og.generators.LocationScale(loc, abs(scale)).cell_masses(grid, outside="fold",
                                                                  outside_tol=1.0)
    ref = og.solve_critic(target, gen, grid, tol=1e-8)
    assert rows[2]["lower"] <= ref.upper + 1e-6 and ref.lower - 1e-6 <= rows[2]["upper"]
    assert state(since=2)["records"] == rows[2:]
    post(server, "/api/sco/control", {"session": session, "action": "stop"})
    while state()["state"] == "running" and time.monotonic() - t0 < 30:
        time.sleep(0.05)
    assert state()["state"] == "done"
    status, body, _ = _request(server, f"/api/export?session={session}&view=sco&format=png")
    assert status == 200 and body[:4] == b"\x89PNG"
    status, body = post(server, "/api/sco/control", {"session": session, "action": "jump"})
    assert status == 400


def test_sco_bad_target_names_the_field(server):
    status, body = post(server, "/api/sco/start", {"session": "sesssco-0002",
                        "target": {"spec": "normal([0, 0], "}})
    assert status == 400 and body["error"]["field"] == "target"
    status, body = post(server, "/api/sco/start", {"session": "sesssco-0002",
                        "target": {"spec": "normal([0, 0], 1)"}, "loc": [1, 2, 3]})
    assert status == 400 and body["error"]["field"] == "loc"


@pytest.fixture(scope="module")
def saved_critic():
    torch = pytest.importorskip("torch")
    from otgrid.auditing.baselines import make_critic

    buf = io.BytesIO()
    torch.save(make_critic(2, (16, 16), seed=1).state_dict(), buf)
    return buf.getvalue()


def _upload(server: str, session: str, data: bytes, name: str = "c.pt") -> tuple[int, dict]:
    status, body, _ = _request(server, f"/api/audit/upload?session={session}&name={name}", data,
                               "application/octet-stream")
    return status, json.loads(body)


def test_audit_of_an_uploaded_state_dict(server, saved_critic):
    session = "sessaudit-01"
    assert _upload(server, session, saved_critic)[1]["bytes"] == len(saved_critic)
    status, body = post(server, "/api/audit/run", {"session": session,
                        "mu": {"spec": "normal([-1, 0], std=0.6)"},
                        "nu": {"spec": "normal([1, 0], std=0.6)"}, "shape": 32,
                        "source": "upload", "samples": 256})
    assert status == 200, body
    snap = wait_job(server, session, "audit", body["job"], timeout=90)
    assert snap["state"] == "done", snap.get("error")
    res = snap["result"]
    keys = [row[0] for row in res["table"]]
    assert {"w_star", "w_ratio", "lipschitz", "grad_cosine"} <= set(keys)
    ref, _, _ = reference("normal([-1, 0], std=0.6)", "normal([1, 0], std=0.6)", 32)
    np.testing.assert_allclose(res["metrics"]["w_star"], ref.w1, rtol=1e-3)
    assert res["figure"] and res["maps"]
    status, body, _ = _request(server, f"/api/export?session={session}&view=audit"
                                       "&format=json")
    assert status == 200 and json.loads(body)["critic"].startswith("uploaded file")


def test_audit_refuses_unsafe_or_broken_uploads(server, saved_critic):
    torch = pytest.importorskip("torch")
    from otgrid.auditing.baselines import make_critic

    session = "sessaudit-02"
    buf = io.BytesIO()
    torch.save(make_critic(2, (8,), seed=0), buf)  # a whole pickled module: refused
    for data, words in ((buf.getvalue(), "pickled torch module"),
                        (b"not a torch file at all", "not a torch file")):
        assert _upload(server, session, data, "bad.pt")[0] == 200
        status, body = post(server, "/api/audit/run", {"session": session,
                            "mu": {"spec": "normal([-1, 0], 1)"},
                            "nu": {"spec": "normal([1, 0], 1)"}, "shape": 16, "source": "upload"})
        snap = wait_job(server, session, "audit", body["job"])
        assert snap["state"] == "error" and words in snap["error"]["message"]
        assert "'bad.pt'" in snap["error"]["message"] and "/tmp" not in snap["error"]["message"]
    assert _upload(server, session, b"")[0] == 400
    status, _ = post(server, "/api/audit/run", {"session": "sessaudit-03", "source": "upload",
                     "mu": {"spec": "normal(0, 1)"}, "nu": {"spec": "normal(1, 1)"}})
    assert status == 400


def test_cli_refuses_a_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "otgrid", "explore", "--port", str(port),
                              "--no-browser"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use" in lines[0]
