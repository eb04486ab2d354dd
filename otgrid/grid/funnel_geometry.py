"""Geometry of the funnel pairs: regions, exit distances, owners, exact angular integrals.

The regions ``R_k = {x : |x - c_k| + b_k <= |x - c_m| + b_m for all m}`` of a funnel pair
(:mod:`otgrid.grid.funnels`) are star-shaped around their apexes. In polar coordinates around
``c_k``, ``1 / s_k(theta)`` (``s_k`` the distance to the region's border along ``theta``) is the
largest of a few functions ``A + B cos theta + C sin theta``, one per side of the box and per
neighbouring apex: :class:`_Envelope` finds the exact angular pieces where one of them is the
largest, :func:`_piece_integrals` integrates ``s^2 / 2``, ``s^3`` and ``s^3 e`` over a piece in
closed form, and :class:`_Geometry` answers owner and exit-distance queries with a k-d tree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

__all__: list[str] = []  # private: used by otgrid.grid.funnels

_MARGIN = 0.5          # offsets satisfy |b_k - b_m| <= _MARGIN |c_k - c_m|
_MIN_SEP = 1e-6        # apexes closer than _MIN_SEP * 2L to another one are redrawn
_MAX_ROUNDS = 1000     # redraw rounds before giving up (offset too large for n_funnels)
_ENV_ANGLES = 64       # starting angles per funnel of the exact envelope computation
_ENV_NEIGHBOURS = 16   # neighbours first tried as the possible borders of a region
_ENV_TOL = 1e-12       # relative tolerance of the envelope's "nothing above" checks
_ENV_MIN_WIDTH = 1e-12  # an angular interval this narrow is accepted as it is
_OWNER_NEIGHBOURS = (3, 16)  # apexes queried for the owner of a point, then all
_OWNER_BRUTE = 8       # up to this many funnels, owners by brute force
_BRUTE_ENTRIES = 1 << 21  # (points x apexes) per chunk of a brute-force owner search
_CHUNK = 1 << 18       # points per chunk (sampling, owners)




# --------------------------------------------------------------------------- construction
def _real(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {x!r}.")
    x = float(x)
    if np.isnan(x):
        raise ValueError(f"{name} must not be NaN.")
    return x


def _draw(n: int, half_width: float, offset: float, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """Apexes uniform in the open box and offsets uniform in ``[0, offset]``, redrawn until
    ``|b_k - b_m| <= 0.5 |c_k - c_m|`` and ``|c_k - c_m| >= 2e-6 L`` for every pair."""
    L = half_width
    c = rng.uniform(-L, L, size=(n, 2))
    b = rng.uniform(0.0, offset, size=n)
    min_sep = _MIN_SEP * 2 * L
    for _ in range(_MAX_ROUNDS):
        bad = set(np.flatnonzero(np.any(np.abs(c) >= L, axis=1)).tolist())
        if n > 1:
            pairs = cKDTree(c).query_pairs(max(offset / _MARGIN, min_sep),
                                           output_type="ndarray")
            if pairs.size:
                i, j = pairs[:, 0], pairs[:, 1]
                d = np.hypot(c[i, 0] - c[j, 0], c[i, 1] - c[j, 1])
                viol = (np.abs(b[i] - b[j]) > _MARGIN * d) | (d < min_sep)
                bad.update(np.maximum(i, j)[viol].tolist())
        if not bad:
            return c, b
        redo = np.array(sorted(bad), dtype=np.intp)
        c[redo] = rng.uniform(-L, L, size=(redo.size, 2))
        b[redo] = rng.uniform(0.0, offset, size=redo.size)
    raise ValueError(f"offset={offset!r} is too large for n_funnels={n} in a box of half-width "
                     f"{L!r}: no draw met |b_k - b_m| <= 0.5 |c_k - c_m| in {_MAX_ROUNDS} rounds; "
                     "use a smaller offset (the default is 0.1 * 2L / sqrt(n_funnels)).")


def _box_exit(c: np.ndarray, e: np.ndarray, L: float) -> np.ndarray:
    """Distance from points ``c`` (m, 2) along unit directions ``e`` (m, 2) to the box."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(e[:, 0] > 0, (L - c[:, 0]) / e[:, 0],
                      np.where(e[:, 0] < 0, (-L - c[:, 0]) / e[:, 0], np.inf))
        ty = np.where(e[:, 1] > 0, (L - c[:, 1]) / e[:, 1],
                      np.where(e[:, 1] < 0, (-L - c[:, 1]) / e[:, 1], np.inf))
    return np.minimum(tx, ty)


def _bisector_exit(ck: np.ndarray, bk: float, cm: np.ndarray, bm: np.ndarray,
                   e: np.ndarray) -> np.ndarray:
    """Distance from apex ``ck`` along ``e`` (m, 2) to the borders with the apexes ``cm``
    (J, 2), offsets ``bm`` (J,): the min over m of ``(|d|^2 - delta^2) / (2 den)`` where
    ``den = delta - d.e > 0``, ``d = ck - cm``, ``delta = bk - bm``; shape (m,)."""
    d = ck[None, :] - cm
    delta = bk - bm
    num = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] - delta * delta
    den = delta[None, :] - (e[:, :1] * d[None, :, 0] + e[:, 1:] * d[None, :, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(den > 0, num[None, :] / (2.0 * den), np.inf)
    return s.min(axis=1) if s.shape[1] else np.full(e.shape[0], np.inf)


# --------------------------------------------------------------------------- the envelope
def _coefficients(c: np.ndarray, b: np.ndarray, L: float, funnels: np.ndarray,
                  nbr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``1/s_j(theta) = A + B cos(theta) + C sin(theta)`` for the borders of ``funnels``.

    Columns 0-3 are the box sides (x = L, x = -L, y = L, y = -L), the others the neighbours
    ``nbr`` (one row of apex indices per funnel).
    """
    ck, bk = c[funnels], b[funnels]
    A = np.zeros((funnels.size, 4 + nbr.shape[1]))
    B = np.zeros_like(A)
    C = np.zeros_like(A)
    B[:, 0], B[:, 1] = 1.0 / (L - ck[:, 0]), -1.0 / (L + ck[:, 0])
    C[:, 2], C[:, 3] = 1.0 / (L - ck[:, 1]), -1.0 / (L + ck[:, 1])
    d = ck[:, None, :] - c[nbr]
    delta = bk[:, None] - b[nbr]
    num = d[..., 0] ** 2 + d[..., 1] ** 2 - delta ** 2
    A[:, 4:] = 2.0 * delta / num
    B[:, 4:] = -2.0 * d[..., 0] / num
    C[:, 4:] = -2.0 * d[..., 1] / num
    return A, B, C


class _Envelope:
    """``g(theta) = max_j A_j + B_j cos(theta) + C_j sin(theta)`` on the circle, per funnel:
    the exact angular pieces on which one border is the nearest (``s = 1 / g``)."""

    def __init__(self, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
        self.A, self.B, self.C = A, B, C

    def _g(self, k: np.ndarray, t: np.ndarray) -> np.ndarray:
        """All borders' ``g`` of funnels ``k`` at angles ``t``, shape (len(k), J)."""
        return (self.A[k] + self.B[k] * np.cos(t)[:, None] + self.C[k] * np.sin(t)[:, None])

    def _diff(self, k: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, ...]:
        """Coefficients of ``g_l - g_i`` for every border l, shape (len(k), J) each."""
        rows = np.arange(k.size)
        A, B, C = self.A[k], self.B[k], self.C[k]
        return (A - A[rows, i][:, None], B - B[rows, i][:, None], C - C[rows, i][:, None])

    def _clean(self, k: np.ndarray, t0: np.ndarray, t1: np.ndarray, i: np.ndarray) -> np.ndarray:
        """True where no border rises above border ``i`` on ``[t0, t1]`` (up to tolerance)."""
        dA, dB, dC = self._diff(k, i)
        with np.errstate(invalid="ignore"):
            h0 = dA + dB * np.cos(t0)[:, None] + dC * np.sin(t0)[:, None]
            h1 = dA + dB * np.cos(t1)[:, None] + dC * np.sin(t1)[:, None]
            R = np.hypot(dB, dC)
            psi = np.arctan2(dC, dB)
            inside = np.mod(psi - t0[:, None], 2 * np.pi) < (t1 - t0)[:, None]
            top = np.where(inside, dA + R, -np.inf)
        Ai, Bi, Ci = self.A[k, i], self.B[k, i], self.C[k, i]
        gi = np.maximum(np.abs(Ai + Bi * np.cos(t0) + Ci * np.sin(t0)),
                        np.abs(Ai + Bi * np.cos(t1) + Ci * np.sin(t1)))
        hmax = np.maximum(np.maximum(h0, h1), top).max(axis=1)
        return hmax <= _ENV_TOL * gi

    def _crossing(self, k: np.ndarray, i: np.ndarray, j: np.ndarray, t0: np.ndarray,
                  t1: np.ndarray) -> np.ndarray:
        """The angle in ``[t0, t1]`` where border j rises above border i (NaN if none)."""
        dA = self.A[k, j] - self.A[k, i]
        dB = self.B[k, j] - self.B[k, i]
        dC = self.C[k, j] - self.C[k, i]
        R = np.hypot(dB, dC)
        with np.errstate(invalid="ignore"):
            root = np.arctan2(dC, dB) - np.arctan2(np.sqrt((R - dA) * (R + dA)), -dA)
        t = t0 + np.mod(root - t0, 2 * np.pi)
        ok = (R > 0) & (np.abs(dA) <= R) & (t <= t1)
        return np.where(ok, t, np.nan)

    def pieces(self, n_angles: int = _ENV_ANGLES) -> tuple[np.ndarray, ...]:
        """``(funnel, theta_a, theta_b, border)`` of every piece, sorted, covering [0, 2pi)."""
        n = self.A.shape[0]
        th = 2 * np.pi * np.arange(n_angles + 1) / n_angles
        arg = np.stack([self._g(np.arange(n), np.full(n, t)).argmax(axis=1) for t in th], 1)
        k = np.repeat(np.arange(n), n_angles)
        t0, t1 = np.tile(th[:-1], n), np.tile(th[1:], n)
        i, j = arg[:, :-1].ravel(), arg[:, 1:].ravel()
        out: list[tuple[np.ndarray, ...]] = []
        while k.size:
            tiny = (t1 - t0) < _ENV_MIN_WIDTH
            same = i == j
            done = tiny.copy()
            a = np.flatnonzero(same & ~tiny)
            done[a] = self._clean(k[a], t0[a], t1[a], i[a])
            tx = np.where(same, np.nan, 0.5 * (t0 + t1))       # tiny: split in the middle
            d = np.flatnonzero(~same & ~tiny)
            tx[d] = self._crossing(k[d], i[d], j[d], t0[d], t1[d])
            d = d[np.isfinite(tx[d])]
            ok = self._clean(k[d], t0[d], tx[d], i[d])
            d = d[ok]
            done[d] = self._clean(k[d], tx[d], t1[d], j[d])
            a, x = done & same, done & ~same
            out += [(k[a], t0[a], t1[a], i[a]), (k[x], t0[x], tx[x], i[x]),
                    (k[x], tx[x], t1[x], j[x])]
            r = ~done
            k, t0, t1, i, j = k[r], t0[r], t1[r], i[r], j[r]
            tm = 0.5 * (t0 + t1)
            im = self._g(k, tm).argmax(axis=1)
            k, t0, t1 = np.tile(k, 2), np.concatenate([t0, tm]), np.concatenate([tm, t1])
            i, j = np.concatenate([i, im]), np.concatenate([im, j])
        return _merge([np.concatenate(col) for col in zip(*out, strict=True)])


def _merge(cols: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Sort pieces by funnel and angle, drop empty ones, join neighbours with one border."""
    k, t0, t1, j = cols
    order = np.lexsort((t0, k))
    k, t0, t1, j = k[order], t0[order], t1[order], j[order]
    keep = t1 > t0
    k, t0, t1, j = k[keep], t0[keep], t1[keep], j[keep]
    start = np.ones(k.size, dtype=bool)
    start[1:] = (k[1:] != k[:-1]) | (j[1:] != j[:-1])
    first = np.flatnonzero(start)
    last = np.append(first[1:], k.size) - 1
    return k[first], t0[first], t1[last], j[first]


def _piece_integrals(A: np.ndarray, B: np.ndarray, C: np.ndarray, t0: np.ndarray,
                     t1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Closed-form ``int s^2/2``, ``int s^3`` and ``int s^3 e`` over ``[t0, t1]``, and the
    largest ``s`` there, for ``1/s = A + R cos(theta - phi)`` (a conic with focus at the apex).

    With ``kappa = A / R`` (``|kappa| <= 1/2``), ``p = 1/R``, ``u = 1 - kappa^2``,
    ``q = p / sqrt(u)``, the border is ``s = p (cosh t - kappa) / u``, ``X = p (1 - kappa cosh
    t) / u``, ``Y = q sinh t`` in the frame rotated by ``phi``, and ``s^2 dtheta = q s dt``.
    """
    R = np.hypot(B, C)
    phi = np.arctan2(C, B)
    kap, p = A / R, 1.0 / R
    u = 1.0 - kap * kap
    q = p / np.sqrt(u)

    def tau(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = t - phi
        s = 1.0 / (A + R * np.cos(x))
        return np.arcsinh(s * np.sin(x) / q), s

    (ta, sa), (tb, sb) = tau(t0), tau(t1)

    def diff(f: Any) -> np.ndarray:
        return f(tb) - f(ta)

    area = q * p / (2 * u) * diff(lambda t: np.sinh(t) - kap * t)
    cosh2 = diff(lambda t: t / 2 + np.sinh(2 * t) / 4)
    cube = q * p * p / (u * u) * (cosh2 - 2 * kap * diff(np.sinh) + kap * kap * (tb - ta))
    vx = q * p * p / (u * u) * ((1 + kap * kap) * diff(np.sinh) - kap * (tb - ta) - kap * cosh2)
    vy = q * p * q / u * diff(lambda t: np.sinh(t) ** 2 / 2 - kap * np.cosh(t))
    moment = np.stack([np.cos(phi) * vx - np.sin(phi) * vy,
                       np.sin(phi) * vx + np.cos(phi) * vy], axis=1)
    return area, cube, moment, np.maximum(sa, sb)


class _Geometry:
    """The regions of ``u = min_k |x - c_k| + b_k`` in the box: owners, exit distances,
    the exact angular pieces of every region and their integrals."""

    def __init__(self, c: np.ndarray, b: np.ndarray, L: float) -> None:
        self.c, self.b, self.L = c, b, L
        self.n = c.shape[0]
        self.spread = float(b.max() - b.min())
        self.tree = cKDTree(c)
        self._build_regions()

    # ------------------------------------------------------------------ regions
    def _build_regions(self) -> None:
        n, c, b = self.n, self.c, self.b
        todo = np.arange(n)
        kk = min(n - 1, _ENV_NEIGHBOURS)
        parts: list[tuple[np.ndarray, ...]] = []
        self.smax = np.zeros(n)
        self.candidates = [np.empty(0, dtype=np.intp)] * n
        while todo.size:
            if kk > 0:
                dist, nbr = self.tree.query(c[todo], k=kk + 1)
                dist, nbr = dist[:, 1:], nbr[:, 1:]
            else:
                dist, nbr = np.zeros((todo.size, 0)), np.zeros((todo.size, 0), dtype=np.intp)
            A, B, C = _coefficients(c, b, self.L, todo, nbr)
            k, t0, t1, j = _Envelope(A, B, C).pieces()
            coef = (A[k, j], B[k, j], C[k, j])
            res = _piece_integrals(*coef, t0, t1)
            sm = np.zeros(todo.size)
            np.maximum.at(sm, k, res[3])
            # an apex beyond the kk-th neighbour has s_m >= (|d| - |delta|) / 2 >= max s_k?
            enough = (np.ones(todo.size, dtype=bool) if kk >= n - 1
                      else (dist[:, -1] - self.spread) / 2 >= sm * (1 + 1e-9))
            keep = enough[k]
            border = np.full(k.size, -1, dtype=np.intp)
            sel = j >= 4
            border[sel] = nbr[k[sel], j[sel] - 4]
            border = np.where(sel, border, j - 4)         # -4..-1: box sides, else an apex
            parts.append(tuple(a[keep] for a in (todo[k], t0, t1, border, *coef, *res[:3])))
            for row in np.flatnonzero(enough):
                f, m = todo[row], nbr[row]
                self.smax[f] = sm[row]
                reach = (dist[row] - np.abs(b[f] - b[m])) / 2 <= sm[row] * (1 + 1e-9)
                self.candidates[f] = np.sort(m[reach])
            todo = todo[~enough]
            kk = min(n - 1, 2 * kk)
        cols = [np.concatenate(col) for col in zip(*parts, strict=True)]
        order = np.lexsort((cols[1], cols[0]))
        (self.piece_funnel, self.piece_t0, self.piece_t1, self.piece_border, self.piece_A,
         self.piece_B, self.piece_C, self.piece_area, cube, moment) = (a[order] for a in cols)
        k = self.piece_funnel
        self.region_area = np.bincount(k, weights=self.piece_area, minlength=n)
        self.cube = float(cube.sum())
        self.moment = np.stack([np.bincount(k, weights=moment[:, a], minlength=n)
                                for a in range(2)], axis=1)
        box = 4 * self.L ** 2
        if abs(self.region_area.sum() - box) > 1e-9 * box:     # pragma: no cover
            raise RuntimeError(f"funnel regions cover an area {self.region_area.sum()!r}, not "
                               f"the box's {box!r}: please report this pair (seed, n_funnels).")

    # ------------------------------------------------------------------ points
    def owner(self, x: np.ndarray) -> np.ndarray:
        """Index of the funnel owning each point (the argmin of ``|x - c_k| + b_k``, ties to
        the lowest index), shape (m,)."""
        out = np.empty(x.shape[0], dtype=np.intp)
        for s in range(0, x.shape[0], _CHUNK):
            out[s:s + _CHUNK] = self._owner_chunk(x[s:s + _CHUNK])
        return out

    def _owner_chunk(self, x: np.ndarray) -> np.ndarray:
        if self.n <= _OWNER_BRUTE:
            return self._owner_brute(x)
        own = np.empty(x.shape[0], dtype=np.intp)
        todo = np.arange(x.shape[0])
        for kk in _OWNER_NEIGHBOURS:
            if kk >= self.n or not todo.size:
                break
            dist, idx = self.tree.query(x[todo], k=kk)
            xs = x[todo]
            vals = np.hypot(xs[:, :1] - self.c[idx, 0], xs[:, 1:] - self.c[idx, 1]) + self.b[idx]
            vmin = vals.min(axis=1)
            own[todo] = np.where(vals == vmin[:, None], idx, self.n).min(axis=1)
            # the owner m has |x - c_m| <= u(x) - b_m <= d_1 + spread: were all such m queried?
            slack = 1e-12 * (dist[:, 0] + 2 * self.L)
            todo = todo[~(dist[:, -1] > dist[:, 0] + self.spread + slack)]
        if todo.size:
            own[todo] = self._owner_brute(x[todo])
        return own

    def _owner_brute(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape[0], dtype=np.intp)
        step = max(1, _BRUTE_ENTRIES // self.n)
        for s in range(0, x.shape[0], step):
            xs = x[s:s + step]
            vals = np.hypot(xs[:, :1] - self.c[None, :, 0], xs[:, 1:] - self.c[None, :, 1])
            out[s:s + step] = (vals + self.b).argmin(axis=1)
        return out

    def exit_distance(self, k: np.ndarray, e: np.ndarray) -> np.ndarray:
        """``s_k(e)``: distance from apex ``c_k`` along unit ``e`` to the border of region k."""
        s = _box_exit(self.c[k], e, self.L)
        if self.n == 1:
            return s
        order = np.argsort(k, kind="stable")
        bounds = np.searchsorted(k[order], np.arange(self.n + 1))
        for f in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[f]:bounds[f + 1]]
            m = self.candidates[f]
            if m.size:
                s[rows] = np.minimum(s[rows], _bisector_exit(self.c[f], self.b[f], self.c[m],
                                                             self.b[m], e[rows]))
        return s

    def rays(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Owner ``k``, radius ``r = |x - c_k|``, direction ``e`` and exit distance ``s``."""
        k = self.owner(x)
        v = x - self.c[k]
        r = np.hypot(v[:, 0], v[:, 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            e = v / r[:, None]
        e[r == 0] = (1.0, 0.0)       # the apex itself: any direction (T(c_k) = c_k)
        return k, r, e, self.exit_distance(k, e)
