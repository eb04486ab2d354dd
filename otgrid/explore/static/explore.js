// otgrid explore: the page. Plain JavaScript, no build step, nothing fetched from the network.
// Every request carries this tab's session id, so two tabs never share state on the server.
"use strict";

const SESSION = (window.crypto && crypto.getRandomValues)
  ? Array.from(crypto.getRandomValues(new Uint8Array(12)), b => b.toString(16).padStart(2, "0")).join("")
  : (Math.random().toString(36).slice(2) + Date.now().toString(36));
const $ = id => document.getElementById(id);
let CONFIG = null;

// ------------------------------------------------------------------ HTTP
async function post(path, data) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(Object.assign({session: SESSION}, data))});
  const body = await r.json();
  if (!r.ok) throw body.error || {message: "HTTP " + r.status, field: ""};
  return body;
}
async function get(path, params) {
  const q = new URLSearchParams(Object.assign({session: SESSION}, params || {}));
  const r = await fetch(path + "?" + q.toString());
  const body = await r.json();
  if (!r.ok) throw body.error || {message: "HTTP " + r.status, field: ""};
  return body;
}
function exportUrl(view, format) {
  return "/api/export?" + new URLSearchParams({session: SESSION, view: view, format: format});
}
async function download(view, format, errorBox) {
  errorBox.textContent = "";
  const r = await fetch(exportUrl(view, format));
  if (!r.ok) { errorBox.textContent = ((await r.json()).error || {}).message || "export failed"; return; }
  const blob = await r.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "otgrid_explore_" + view + "." + format;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 5000);
}
const sleep = ms => new Promise(res => setTimeout(res, ms));
const fmt = (v, d) => (v === null || v === undefined || !isFinite(v)) ? "n/a" : Number(v).toPrecision(d || 6);

// ------------------------------------------------------------------ drawing
// A plot: data box -> pixel box with margins, axes with ticks.
class Plot {
  constructor(canvas, xr, yr, opts) {
    opts = opts || {};
    this.c = canvas; this.ctx = canvas.getContext("2d");
    this.m = Object.assign({l: 48, r: opts.right ? 48 : 14, t: 12, b: 32}, opts.margin || {});
    this.xr = xr; this.yr = yr; this.logy = !!opts.logy;
    this.w = canvas.width - this.m.l - this.m.r; this.h = canvas.height - this.m.t - this.m.b;
    if (opts.equal) {  // same scale on both axes
      const sx = this.w / (xr[1] - xr[0]), sy = this.h / (yr[1] - yr[0]), s = Math.min(sx, sy);
      this.w = s * (xr[1] - xr[0]); this.h = s * (yr[1] - yr[0]);
    }
  }
  X(x) { return this.m.l + (x - this.xr[0]) / (this.xr[1] - this.xr[0]) * this.w; }
  ty(y) { return this.logy ? Math.log10(Math.max(y, 1e-300)) : y; }
  Y(y) {
    const a = this.ty(this.yr[0]), b = this.ty(this.yr[1]);
    return this.m.t + this.h - (this.ty(y) - a) / (b - a) * this.h;
  }
  invX(px) { return this.xr[0] + (px - this.m.l) / this.w * (this.xr[1] - this.xr[0]); }
  invY(py) { return this.yr[0] + (this.m.t + this.h - py) / this.h * (this.yr[1] - this.yr[0]); }
  clear() { this.ctx.clearRect(0, 0, this.c.width, this.c.height); }
  axes(xlabel, ylabel) {
    const g = this.ctx;
    g.save(); g.strokeStyle = "#888"; g.fillStyle = "#333"; g.font = "11px sans-serif";
    g.strokeRect(this.m.l, this.m.t, this.w, this.h);
    g.textAlign = "center"; g.textBaseline = "top";
    for (const t of ticks(this.xr[0], this.xr[1], 6)) {
      const x = this.X(t); g.beginPath(); g.moveTo(x, this.m.t + this.h); g.lineTo(x, this.m.t + this.h + 4); g.stroke();
      g.fillText(tickLabel(t), x, this.m.t + this.h + 6);
    }
    g.textAlign = "right"; g.textBaseline = "middle";
    const yt = this.logy ? logTicks(this.yr[0], this.yr[1]) : ticks(this.yr[0], this.yr[1], 5);
    for (const t of yt) {
      const y = this.Y(t); g.beginPath(); g.moveTo(this.m.l - 4, y); g.lineTo(this.m.l, y); g.stroke();
      g.fillText(tickLabel(t), this.m.l - 6, y);
    }
    if (xlabel) { g.textAlign = "center"; g.textBaseline = "bottom"; g.fillText(xlabel, this.m.l + this.w / 2, this.c.height - 1); }
    if (ylabel) { g.save(); g.translate(11, this.m.t + this.h / 2); g.rotate(-Math.PI / 2); g.textAlign = "center"; g.textBaseline = "middle"; g.fillText(ylabel, 0, 0); g.restore(); }
    g.restore();
  }
  rightAxis(yr, label) {
    const g = this.ctx, a = yr[0], b = yr[1];
    g.save(); g.fillStyle = "#333"; g.font = "11px sans-serif"; g.textAlign = "left"; g.textBaseline = "middle";
    for (const t of ticks(a, b, 5)) {
      const y = this.m.t + this.h - (t - a) / (b - a) * this.h;
      g.fillText(tickLabel(t), this.m.l + this.w + 5, y);
    }
    if (label) { g.translate(this.c.width - 8, this.m.t + this.h / 2); g.rotate(Math.PI / 2); g.textAlign = "center"; g.fillText(label, 0, 0); }
    g.restore();
  }
  line(xs, ys, color, width, dash) {
    const g = this.ctx; g.save(); g.beginPath(); g.strokeStyle = color; g.lineWidth = width || 1.5;
    if (dash) g.setLineDash(dash);
    let started = false;
    for (let i = 0; i < xs.length; i++) {
      if (ys[i] === null || !isFinite(ys[i])) { started = false; continue; }
      const x = this.X(xs[i]), y = this.Y(ys[i]);
      if (!started) { g.moveTo(x, y); started = true; } else g.lineTo(x, y);
    }
    g.stroke(); g.restore();
  }
  clip() { const g = this.ctx; g.save(); g.beginPath(); g.rect(this.m.l, this.m.t, this.w, this.h); g.clip(); }
}
function ticks(a, b, n) {
  if (!(b > a)) return [a];
  const step0 = (b - a) / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map(s => s * mag).find(s => s >= step0) || 10 * mag;
  const out = [];
  for (let t = Math.ceil(a / step) * step; t <= b + 1e-9 * step; t += step) out.push(Math.abs(t) < 1e-12 * step ? 0 : t);
  return out;
}
function logTicks(a, b) {
  const out = [];
  for (let e = Math.ceil(Math.log10(a)); e <= Math.floor(Math.log10(b)); e++) out.push(Math.pow(10, e));
  return out.length ? out : [a, b];
}
function tickLabel(t) {
  const a = Math.abs(t);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return t.toExponential(0);
  return String(Number(t.toPrecision(4)));
}
// A quantised image (server: render.encode_image) through a colour map, into a plot's box.
function drawImage(plot, img, cmap, alphaFrom) {
  const bytes = Uint8Array.from(atob(img.data), ch => ch.charCodeAt(0));
  const off = document.createElement("canvas"); off.width = img.width; off.height = img.height;
  const octx = off.getContext("2d"), data = octx.createImageData(img.width, img.height);
  const lut = CONFIG.colormaps[cmap].map(h => [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]);
  for (let i = 0; i < bytes.length; i++) {
    const c = lut[bytes[i]];
    data.data[4 * i] = c[0]; data.data[4 * i + 1] = c[1]; data.data[4 * i + 2] = c[2];
    data.data[4 * i + 3] = alphaFrom ? Math.min(255, bytes[i] * 3) : 255;
  }
  octx.putImageData(data, 0, 0);
  const g = plot.ctx; g.save(); g.imageSmoothingEnabled = img.width < 96;
  g.drawImage(off, plot.X(plot.xr[0]), plot.Y(plot.yr[1]), plot.w, plot.h); g.restore();
}
function colorbar(plot, cmap, lo, hi) {
  const g = plot.ctx, x = plot.m.l + plot.w + 8, h = plot.h, lut = CONFIG.colormaps[cmap];
  for (let i = 0; i < 64; i++) {
    g.fillStyle = lut[Math.round((63 - i) / 63 * 255)];
    g.fillRect(x, plot.m.t + i * h / 64, 10, h / 64 + 1);
  }
  g.fillStyle = "#333"; g.font = "10px sans-serif"; g.textAlign = "left";
  g.textBaseline = "top"; g.fillText(tickLabel(hi), x + 12, plot.m.t);
  g.textBaseline = "bottom"; g.fillText(tickLabel(lo), x + 12, plot.m.t + h);
}
function arrow(g, x0, y0, x1, y1) {
  const a = Math.atan2(y1 - y0, x1 - x0), L = Math.hypot(x1 - x0, y1 - y0), hd = Math.min(5, 0.45 * L);
  g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1);
  g.lineTo(x1 - hd * Math.cos(a - 0.45), y1 - hd * Math.sin(a - 0.45));
  g.moveTo(x1, y1); g.lineTo(x1 - hd * Math.cos(a + 0.45), y1 - hd * Math.sin(a + 0.45)); g.stroke();
}
function ellipse(plot, mean, cov, k, color, dash) {
  // the k-std ellipse of N(mean, cov) in 2D
  const a = cov[0][0], b = cov[0][1], c = cov[1][1], tr = (a + c) / 2, det = Math.sqrt(Math.max(((a - c) / 2) ** 2 + b * b, 0));
  const l1 = tr + det, l2 = Math.max(tr - det, 0), th = 0.5 * Math.atan2(2 * b, a - c);
  const g = plot.ctx; g.save(); g.strokeStyle = color; g.lineWidth = 2; if (dash) g.setLineDash(dash);
  g.beginPath();
  for (let i = 0; i <= 64; i++) {
    const t = 2 * Math.PI * i / 64, u = k * Math.sqrt(l1) * Math.cos(t), v = k * Math.sqrt(l2) * Math.sin(t);
    const x = mean[0] + u * Math.cos(th) - v * Math.sin(th), y = mean[1] + u * Math.sin(th) + v * Math.cos(th);
    if (i === 0) g.moveTo(plot.X(x), plot.Y(y)); else g.lineTo(plot.X(x), plot.Y(y));
  }
  g.stroke(); g.restore();
}

// ------------------------------------------------------------------ tabs
function showView(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === name);
  for (const s of document.querySelectorAll(".view")) s.classList.toggle("active", s.id === "view-" + name);
}

// ================================================================== critic view
const C = {job: null, result: null, modes: null, bounds: null, progress: [], dragging: null,
           pending: null, inflight: false, t0: 0, token: 0};

function criticErrors(clear, err) {
  for (const f of ["mu", "nu", "shape", "bounds"]) $(f + "-error").textContent = "";
  $("critic-error").textContent = "";
  if (clear || !err) return;
  const box = $((err.field || "") + "-error");
  (box || $("critic-error")).textContent = err.message;
}
function parseBounds(text) {
  text = (text || "").trim();
  if (!text || text === "auto") return null;
  const v = text.replace(/[\[\](),]/g, " ").trim().split(/\s+/).map(Number);
  if (v.length % 2 || v.some(x => !isFinite(x))) throw {message: "bounds: give LOW HIGH pairs, e.g. -5 5 or -5 5 -4 4", field: "bounds"};
  const out = []; for (let i = 0; i < v.length; i += 2) out.push([v[i], v[i + 1]]);
  return out;
}
function criticRequest(fromModes) {
  const req = {shape: Number($("shape").value), norm: $("norm").value, backend: $("backend").value,
               tol: Number($("tol").value), bounds: parseBounds($("bounds").value)};
  if (fromModes && C.modes) {
    req.mu = {modes: C.modes.mu}; req.nu = {modes: C.modes.nu};
    req.bounds = C.bounds;  // keep the grid: the warm start needs it
    req.warm_start = true;
  } else {
    req.mu = {spec: $("mu-spec").value}; req.nu = {spec: $("nu-spec").value};
  }
  return req;
}
async function solve(fromModes) {
  let req;
  try { req = criticRequest(fromModes); } catch (e) { criticErrors(false, e); return; }
  if (C.inflight && fromModes) { C.pending = true; return; }  // one drag request at a time
  // a newer request supersedes this one (the server cancels its job): from then on, this
  // request neither reports errors nor clears the in-flight flag of the newer one
  const token = ++C.token;
  C.inflight = true; C.t0 = performance.now(); C.progress = [];
  try {
    const r = await post("/api/critic/solve", req);
    if (token !== C.token) return;
    C.job = r.job; criticErrors(true);
    $("w-label").dataset.state = "running";
    await pollCritic(r.job);
  } catch (e) {
    if (token === C.token) { criticErrors(false, e); $("w-label").dataset.state = "error"; }
  } finally {
    if (token === C.token) {
      C.inflight = false;
      if (C.pending) { C.pending = false; solve(true); }
    }
  }
}
async function pollCritic(job) {
  let version = -1;
  for (;;) {
    if (job !== C.job) return;
    const s = await get("/api/job", {view: "critic", job: job});
    if (s.version !== version && s.progress && s.progress.upper !== undefined) {
      version = s.version; const p = s.progress;
      C.progress.push([p.iteration, p.lower, p.upper]);
      if (s.state === "running") {
        $("w-label").textContent = "W ∈ [" + fmt(p.lower) + ", " + fmt(p.upper) + "]  …";
        $("w-detail").textContent = "iteration " + p.iteration + ", gap " + fmt((p.upper - p.lower) / p.upper, 2) + " (relative), " + fmt(p.seconds, 3) + " s";
        drawBounds(null);
      }
    }
    if (s.state === "done") { showCritic(s.result, job); return; }
    if (s.state === "error") { criticErrors(false, s.error); $("w-label").dataset.state = "error"; return; }
    if (s.state === "cancelled") { $("w-label").dataset.state = "cancelled"; $("w-detail").textContent = "cancelled"; return; }
    await sleep(s.state === "queued" ? 60 : 40);
  }
}
function showCritic(res, job) {
  C.result = res; C.bounds = res.bounds;
  if (!C.dragging) C.modes = {mu: res.modes.mu, nu: res.modes.nu};
  const el = $("w-label"), ms = performance.now() - C.t0;
  el.textContent = "W ≈ " + fmt(res.w) + "   ∈ [" + fmt(res.lower, 8) + ", " + fmt(res.upper, 8) + "]";
  Object.assign(el.dataset, {state: "done", job: job, w: res.w, lower: res.lower, upper: res.upper,
                             ms: ms.toFixed(1), muSpec: res.specs.mu, nuSpec: res.specs.nu,
                             bounds: JSON.stringify(res.bounds), shape: res.shape[0]});
  const t = res.timing || {};
  $("w-detail").textContent = res.message + "  " + res.iterations + " iterations" +
    (t.warm_start ? " (warm start)" : "") + ", solve " + fmt(t.solve, 3) + " s, update shown after " +
    (ms / 1000).toPrecision(3) + " s; backend " + res.backend + ", grid " + res.shape.join("×") +
    " on " + res.bounds.map(b => "[" + b[0] + ", " + b[1] + "]").join("×") +
    (Math.max(res.outside_mass.mu, res.outside_mass.nu) > 1e-9 ? "; mass outside the bounds: μ " + fmt(res.outside_mass.mu, 2) + ", ν " + fmt(res.outside_mass.nu, 2) : "");
  const known = [];
  if (res.closed_form !== undefined) known.push("closed form (1D): W = dx·Σ|F_μ − F_ν| = " + fmt(res.closed_form, 8));
  if (res.known) known.push(res.known.label + ": " + fmt(res.known.value, 6) + " (the grid value converges to it as the grid is refined)");
  $("w-known").textContent = known.join("   ");
  if (!C.dragging) { $("mu-spec").value = res.specs.mu; $("nu-spec").value = res.specs.nu; }
  const is1d = res.ndim === 1;
  $("plots-1d").classList.toggle("hidden", !is1d); $("plots-2d").classList.toggle("hidden", is1d);
  if (is1d) draw1d(res); else draw2d(res);
  drawBounds(res);
  el.dataset.drawnMs = (performance.now() - C.t0).toFixed(1);  // request to figures drawn
}
function extent(res) { return [res.bounds[0], res.bounds.length > 1 ? res.bounds[1] : null]; }
function drawHandles(plot, is1d, ymax) {
  if (!C.modes) return;
  const g = plot.ctx;
  for (const [name, color] of [["mu", "#d62728"], ["nu", "#1f77b4"]]) {
    for (const m of (C.modes[name] || [])) {
      const x = is1d ? m.x : m.x[0], y = is1d ? 0.9 * ymax : m.x[1];
      g.save(); g.strokeStyle = color; g.fillStyle = "rgba(255,255,255,0.85)"; g.lineWidth = 2;
      g.beginPath(); g.arc(plot.X(x), plot.Y(y), 6, 0, 2 * Math.PI); g.fill(); g.stroke();
      const r = Math.abs(plot.X(x + m.std) - plot.X(x));
      g.setLineDash([4, 3]); g.beginPath();
      if (is1d) { g.moveTo(plot.X(x) - r, plot.Y(y)); g.lineTo(plot.X(x) + r, plot.Y(y)); }
      else g.arc(plot.X(x), plot.Y(y), r, 0, 2 * Math.PI);
      g.stroke(); g.restore();
    }
  }
}
function draw2d(res) {
  const [bx, by] = extent(res);
  const pc = new Plot($("cv-critic"), bx, by, {equal: true, right: true});
  pc.clear(); drawImage(pc, res.critic, "RdBu_r");
  pc.clip();
  const g = pc.ctx; g.strokeStyle = "rgba(20,20,20,0.45)"; g.lineWidth = 1;
  for (const lev of res.contours) for (const line of lev.lines) {
    g.beginPath(); line.forEach((p, i) => i ? g.lineTo(pc.X(p[0]), pc.Y(p[1])) : g.moveTo(pc.X(p[0]), pc.Y(p[1]))); g.stroke();
  }
  const cell = Math.min(pc.w, pc.h) / 22;
  g.strokeStyle = "rgba(10,10,10,0.85)"; g.lineWidth = 1.2;
  for (const [x, y, u, v] of res.arrows) arrow(g, pc.X(x), pc.Y(y), pc.X(x) + 1.1 * cell * u, pc.Y(y) - 1.1 * cell * v);
  drawHandles(pc, false); g.restore();
  pc.axes("x", "y"); colorbar(pc, "RdBu_r", res.critic.vmin, res.critic.vmax);
  C.plot2d = pc;
  const pg = new Plot($("cv-grad"), bx, by, {equal: true, right: true});
  pg.clear(); drawImage(pg, res.grad_norm, "viridis"); pg.axes("x", "y"); colorbar(pg, "viridis", 0, 1);
  const pm = new Plot($("cv-measures"), bx, by, {equal: true, right: true});
  pm.clear(); const gm = pm.ctx; gm.fillStyle = "#fff"; gm.fillRect(pm.m.l, pm.m.t, pm.w, pm.h);
  drawImage(pm, res.density_mu, "Reds", true); gm.globalCompositeOperation = "multiply";
  drawImage(pm, res.density_nu, "Blues", true); gm.globalCompositeOperation = "source-over";
  pm.clip(); drawHandles(pm, false); gm.restore(); pm.axes("x", "y");
  C.plotMeasures = pm;
}
function draw1d(res) {
  const x = res.x, xr = res.bounds[0];
  const ymax = Math.max(...res.density_mu, ...res.density_nu) * 1.08 || 1;
  const p = new Plot($("cv-1d"), xr, [0, ymax], {right: true});
  p.clear(); const g = p.ctx;
  for (const [d, col] of [[res.density_mu, "rgba(214,39,40,0.30)"], [res.density_nu, "rgba(31,119,180,0.30)"]]) {
    g.fillStyle = col; g.beginPath(); g.moveTo(p.X(x[0]), p.Y(0));
    x.forEach((xi, i) => g.lineTo(p.X(xi), p.Y(d[i]))); g.lineTo(p.X(x[x.length - 1]), p.Y(0)); g.fill();
  }
  const fmin = Math.min(...res.critic), fmax = Math.max(...res.critic), pad = 0.05 * (fmax - fmin || 1);
  const pf = new Plot($("cv-1d"), xr, [fmin - pad, fmax + pad], {right: true});
  pf.line(x, res.critic, "#111", 2);
  drawHandles(p, true, ymax);
  p.axes("x", "density"); pf.rightAxis([fmin - pad, fmax + pad], "critic f");
  C.plot1d = p; C.ymax1d = ymax;
  const q = new Plot($("cv-cdf"), xr, [0, 1.02]);
  q.clear(); const h = q.ctx; h.fillStyle = "rgba(120,120,120,0.35)"; h.beginPath();
  x.forEach((xi, i) => i ? h.lineTo(q.X(xi), q.Y(res.cdf_mu[i])) : h.moveTo(q.X(xi), q.Y(res.cdf_mu[i])));
  for (let i = x.length - 1; i >= 0; i--) h.lineTo(q.X(x[i]), q.Y(res.cdf_nu[i]));
  h.fill();
  q.line(x, res.cdf_mu, "#d62728", 2); q.line(x, res.cdf_nu, "#1f77b4", 2); q.axes("x", "CDF");
}
function drawBounds(res) {
  const is1d = C.result && C.result.ndim === 1 && !$("plots-1d").classList.contains("hidden");
  const cv = is1d ? $("cv-bounds-1d") : $("cv-bounds");
  let it, lo, up;
  if (res) { it = res.history.iteration; lo = res.history.lower; up = res.history.upper; }
  else { it = C.progress.map(p => p[0]); lo = C.progress.map(p => p[1]); up = C.progress.map(p => p[2]); }
  if (!it.length) return;
  const w = up[up.length - 1], ys = lo.concat(up).filter(v => v > 0 && isFinite(v));
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  y0 = Math.max(y0, 0.5 * w); y1 = Math.min(y1, 2 * w); if (!(y1 > y0)) { y0 = 0.9 * w; y1 = 1.1 * w; }
  const p = new Plot(cv, [0, Math.max(it[it.length - 1], 1)], [y0, y1]);
  p.clear(); p.clip(); p.line(it, lo, "#2ca02c", 2); p.line(it, up, "#9467bd", 2); p.ctx.restore();
  p.axes("iteration", "W bounds");
  const g = p.ctx; g.font = "11px sans-serif"; g.fillStyle = "#2ca02c"; g.fillText("lower", p.m.l + 8, p.m.t + 14);
  g.fillStyle = "#9467bd"; g.fillText("upper", p.m.l + 50, p.m.t + 14);
}

// dragging modes: move the centre; the wheel changes the width
function modeAt(plot, is1d, px, py) {
  if (!C.modes || !plot) return null;
  let best = null, bestd = 12;
  for (const name of ["mu", "nu"]) (C.modes[name] || []).forEach((m, i) => {
    const x = is1d ? m.x : m.x[0], y = is1d ? 0.9 * C.ymax1d : m.x[1];
    const d = Math.hypot(plot.X(x) - px, plot.Y(y) - py);
    if (d < bestd) { bestd = d; best = {name: name, i: i}; }
  });
  return best;
}
function canvasXY(ev, canvas) {
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}
function attachDrag(canvas, plotOf, is1d) {
  canvas.addEventListener("mousedown", ev => {
    const [px, py] = canvasXY(ev, canvas), hit = modeAt(plotOf(), is1d, px, py);
    if (hit) { C.dragging = hit; ev.preventDefault(); }
  });
  window.addEventListener("mousemove", ev => {
    if (!C.dragging || !plotOf()) return;
    const [px, py] = canvasXY(ev, canvas), p = plotOf(), m = C.modes[C.dragging.name][C.dragging.i];
    if (is1d) m.x = p.invX(px); else m.x = [p.invX(px), p.invY(py)];
    solve(true);
  });
  window.addEventListener("mouseup", () => { if (C.dragging) { C.dragging = null; solve(true); } });
  canvas.addEventListener("wheel", ev => {
    const [px, py] = canvasXY(ev, canvas), hit = modeAt(plotOf(), is1d, px, py);
    if (!hit) return;
    ev.preventDefault();
    const m = C.modes[hit.name][hit.i]; m.std = Math.max(0.02, m.std * (ev.deltaY > 0 ? 1.1 : 1 / 1.1));
    solve(true);
  }, {passive: false});
}

function setupCritic() {
  const sel = $("preset");
  for (const [k, p] of Object.entries(CONFIG.presets)) sel.add(new Option(p.label, k));
  sel.addEventListener("change", () => {
    const p = CONFIG.presets[sel.value];
    $("mu-spec").value = p.mu; $("nu-spec").value = p.nu;
    $("bounds").value = p.bounds ? p.bounds.flat().join(" ") : "";
    $("shape").value = sel.value.endsWith("1d") ? 512 : 96;
    C.modes = null; solve(false);
  });
  for (const [k, v] of Object.entries(CONFIG.backends)) {
    const o = new Option(k, k); o.disabled = v !== "available"; o.title = v; $("backend").add(o);
  }
  $("backend").add(new Option("auto", "auto"), 0); $("backend").value = "auto";
  $("grammar").textContent = CONFIG.grammar;
  $("critic-form").addEventListener("submit", ev => { ev.preventDefault(); C.modes = null; solve(false); });
  $("cancel").addEventListener("click", () => post("/api/cancel", {view: "critic"}).catch(() => {}));
  $("export-png").addEventListener("click", () => download("critic", "png", $("critic-error")));
  $("export-json").addEventListener("click", () => download("critic", "json", $("critic-error")));
  attachDrag($("cv-critic"), () => C.plot2d, false);
  attachDrag($("cv-measures"), () => C.plotMeasures, false);
  attachDrag($("cv-1d"), () => C.plot1d, true);
  // ?preset=NAME picks the first problem (e.g. a link to a preset in the docs)
  const wanted = new URLSearchParams(location.search).get("preset");
  sel.value = (wanted && CONFIG.presets[wanted]) ? wanted : "gaussians-2d";
  sel.dispatchEvent(new Event("change"));
}

// ================================================================== SCO view
const S = {job: null, records: [], wgan: [], view: null, polling: false};

function scoErrors(err) {
  $("sco-target-error").textContent = ""; $("sco-error").textContent = "";
  if (!err) return;
  (err.field === "target" ? $("sco-target-error") : $("sco-error")).textContent = err.message;
}
async function scoStart() {
  scoErrors(null);
  const loc = $("sco-loc").value.replace(/[\[\](),]/g, " ").trim().split(/\s+/).map(Number);
  try {
    const r = await post("/api/sco/start", {target: {spec: $("sco-target").value},
      generator: $("sco-generator").value, loc: loc.length === 1 ? loc[0] : loc,
      scale: $("sco-scale").value, lr: $("sco-lr").value, optimizer: $("sco-optimizer").value,
      shape: Number($("sco-shape").value), steps: Number($("sco-steps").value), wgan: $("sco-wgan").checked});
    S.job = r.job; S.records = []; S.wgan = []; S.view = null;
    $("sco-label").dataset.steps = "-1";
    if (!S.polling) pollSco();
  } catch (e) { scoErrors(e); }
}
async function scoControl(action) {
  try { await post("/api/sco/control", {action: action, n: 1}); if (!S.polling) pollSco(); }
  catch (e) { scoErrors(e); }
}
async function pollSco() {
  S.polling = true;
  try {
    for (;;) {
      const s = await get("/api/sco/state", {since: S.records.length, wgan_since: S.wgan.length});
      if (s.view) S.view = s.view;
      if (s.since === S.records.length) S.records.push(...s.records);
      if (s.wgan_since === S.wgan.length) S.wgan.push(...s.wgan);
      showSco(s);
      if (s.error) scoErrors(s.error);
      if (s.state !== "running" && s.state !== "queued") break;
      await sleep(s.paused ? 250 : 120);
    }
  } catch (e) { scoErrors(e); }
  S.polling = false;
}
function genStats(params, kind, d) {
  // mean and covariance of the generator's Gaussian
  if (kind === "affine") {
    const A = d === 1 ? [[params[0]]] : [[params[0], params[1]], [params[2], params[3]]];
    const b = params.slice(d * d);
    const cov = A.map(r => A.map(s => r.reduce((t, v, k) => t + v * s[k], 0)));
    return {mean: b, cov: cov};
  }
  const loc = params.slice(0, d), sc = params.slice(d);
  return {mean: loc, cov: d === 1 ? [[sc[0] * sc[0]]] : [[sc[0] * sc[0], 0], [0, sc[1] * sc[1]]]};
}
function showSco(s) {
  const last = S.records[S.records.length - 1], el = $("sco-label");
  if (last) {
    el.textContent = "SCO step " + last.step + ": W ∈ [" + fmt(last.lower, 5) + ", " + fmt(last.upper, 5) + "]";
    Object.assign(el.dataset, {steps: last.step, lower: last.lower, upper: last.upper});
  }
  $("sco-detail").textContent = (s.paused ? "paused" : s.state) + (s.message ? " — " + s.message : "");
  const lw = S.wgan[S.wgan.length - 1];
  $("sco-wgan-label").textContent = !s.wgan_enabled ? "WGAN-GP comparison: off (needs torch and a location-scale generator)" :
    (lw ? "WGAN-GP step " + lw.step + ": W ∈ [" + fmt(lw.lower, 5) + ", " + fmt(lw.upper, 5) + "]  " : "") + (s.wgan_message || "");
  if (S.view) drawSco();
}
function drawSco() {
  const v = S.view, d = v.ndim, kind = v.generator;
  const cv = $("cv-sco");
  if (d === 2) {
    const p = new Plot(cv, v.bounds[0], v.bounds[1], {equal: true});
    p.clear(); drawImage(p, v.density, "Blues"); p.clip();
    for (const [rows, col] of [[S.records, "#1f4fd8"], [S.wgan, "#ff7f0e"]]) {
      if (!rows.length) continue;
      const st = rows.map(r => genStats(r.params, kind, 2));
      p.line(st.map(q => q.mean[0]), st.map(q => q.mean[1]), col, 1.5);
      const q = st[st.length - 1];
      ellipse(p, q.mean, q.cov, 1, col); ellipse(p, q.mean, q.cov, 2, col, [5, 4]);
    }
    p.ctx.restore(); p.axes("x", "y");
  } else {
    const x = v.x, ymax0 = Math.max(...v.density);
    const curves = [];
    for (const [rows, col] of [[S.records, "#1f4fd8"], [S.wgan, "#ff7f0e"]]) {
      if (!rows.length) continue;
      const q = genStats(rows[rows.length - 1].params, kind, 1), sd = Math.sqrt(q.cov[0][0]);
      curves.push([x.map(t => Math.exp(-0.5 * ((t - q.mean[0]) / sd) ** 2) / (sd * Math.sqrt(2 * Math.PI))), col]);
    }
    const ymax = 1.1 * Math.max(ymax0, ...curves.map(c => Math.min(Math.max(...c[0]), 5 * ymax0)));
    const p = new Plot(cv, v.bounds[0], [0, ymax]);
    p.clear(); const g = p.ctx; g.fillStyle = "rgba(60,60,60,0.25)"; g.beginPath(); g.moveTo(p.X(x[0]), p.Y(0));
    x.forEach((t, i) => g.lineTo(p.X(t), p.Y(v.density[i]))); g.lineTo(p.X(x[x.length - 1]), p.Y(0)); g.fill();
    p.clip(); for (const [ys, col] of curves) p.line(x, ys, col, 2); g.restore();
    p.axes("x", "density");
  }
  const all = S.records.concat(S.wgan), ys = all.flatMap(r => [r.lower, r.upper]).filter(t => t > 0);
  if (!ys.length) return;
  const steps = Math.max(1, ...all.map(r => r.step));
  const q = new Plot($("cv-sco-w"), [0, steps], [Math.min(...ys) / 1.5, Math.max(...ys) * 1.5], {logy: true});
  q.clear(); q.clip();
  for (const [rows, col] of [[S.records, "#1f4fd8"], [S.wgan, "#ff7f0e"]]) {
    if (!rows.length) continue;
    q.line(rows.map(r => r.step), rows.map(r => r.upper), col, 1.5);
    q.line(rows.map(r => r.step), rows.map(r => r.lower), col, 1.5, [3, 3]);
  }
  q.ctx.restore(); q.axes("generator step", "certified W (log)");
  const g = q.ctx, yb = q.m.t + q.h; g.font = "11px sans-serif";
  g.fillStyle = "#1f4fd8"; g.fillText("SCO (exact critic)", q.m.l + 8, yb - 24);
  g.fillStyle = "#ff7f0e"; g.fillText("WGAN-GP, same generator steps", q.m.l + 8, yb - 10);
}
function setupSco() {
  $("sco-form").addEventListener("submit", ev => { ev.preventDefault(); scoStart(); });
  for (const a of ["play", "pause", "step", "stop"]) $("sco-" + a).addEventListener("click", () => scoControl(a));
  $("sco-export-png").addEventListener("click", () => download("sco", "png", $("sco-error")));
  $("sco-export-json").addEventListener("click", () => download("sco", "json", $("sco-error")));
  if (!CONFIG.torch) { $("sco-wgan").checked = false; $("sco-wgan").disabled = true; }
}

// ================================================================== audit view
const A = {job: null};
function auditErrors(err) {
  for (const id of ["audit-mu-error", "audit-nu-error", "audit-upload-error", "audit-error"]) $(id).textContent = "";
  if (!err) return;
  const box = {mu: "audit-mu-error", nu: "audit-nu-error", upload: "audit-upload-error"}[err.field];
  $(box || "audit-error").textContent = err.message;
}
async function auditUpload() {
  const f = $("audit-file").files[0];
  if (!f) return;
  auditErrors(null);
  if (f.size > CONFIG.max_upload) { auditErrors({field: "upload", message: "the file has " + f.size + " bytes; at most " + CONFIG.max_upload + " are accepted."}); return; }
  const r = await fetch("/api/audit/upload?" + new URLSearchParams({session: SESSION, name: f.name}),
                        {method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: await f.arrayBuffer()});
  const body = await r.json();
  if (!r.ok) auditErrors(body.error); else { $("audit-src-upload").checked = true; $("audit-detail").textContent = "uploaded " + body.name + " (" + body.bytes + " bytes)"; }
}
async function auditRun() {
  auditErrors(null);
  const source = $("audit-src-upload").checked ? "upload" : "baseline";
  let job = null;
  try {
    const r = await post("/api/audit/run", {mu: {spec: $("audit-mu").value}, nu: {spec: $("audit-nu").value},
      shape: Number($("audit-shape").value), samples: Number($("audit-samples").value), source: source,
      method: $("audit-method").value, steps: Number($("audit-steps").value), arch: $("audit-arch").value});
    job = r.job; A.job = r.job; $("audit-label").dataset.state = "running"; $("audit-label").textContent = "Audit: running…";
    for (;;) {
      const s = await get("/api/job", {view: "audit", job: r.job});
      if (r.job !== A.job) return;
      const p = s.progress || {};
      $("audit-detail").textContent = (p.phase || s.state) + (p.upper !== undefined ? "  W* ∈ [" + fmt(p.lower) + ", " + fmt(p.upper) + "]" : "");
      if (s.state === "done") { showAudit(s.result); return; }
      if (s.state === "error") { auditErrors(s.error); $("audit-label").dataset.state = "error"; $("audit-label").textContent = "Audit: failed"; return; }
      if (s.state === "cancelled") { $("audit-label").dataset.state = "cancelled"; $("audit-label").textContent = "Audit: cancelled"; return; }
      await sleep(200);
    }
  } catch (e) { if (job === null || job === A.job) auditErrors(e); }  // not a superseded run's
}
function showAudit(res) {
  const m = res.metrics, el = $("audit-label");
  el.textContent = "W* = " + fmt(m.w_star) + "   w_ratio " + fmt(m.w_ratio, 4) + "   grad_cosine " + fmt(m.grad_cosine, 4) + "   lipschitz " + fmt(m.lipschitz, 4);
  Object.assign(el.dataset, {state: "done", wStar: m.w_star, job: A.job});
  $("audit-detail").textContent = res.origin + "; " + res.seconds + " s";
  $("audit-figure").src = "data:image/png;base64," + res.figure; $("audit-figure").classList.remove("hidden");
  $("audit-maps").src = "data:image/png;base64," + res.maps; $("audit-maps").classList.remove("hidden");
  const t = $("audit-table"); t.innerHTML = "";
  for (const [key, label, value] of res.table) {
    const tr = t.insertRow(); tr.title = key; tr.insertCell().textContent = label; tr.insertCell().textContent = value;
  }
}
function setupAudit() {
  const sel = $("audit-preset");
  for (const [k, p] of Object.entries(CONFIG.presets)) sel.add(new Option(p.label, k));
  sel.addEventListener("change", () => {
    const p = CONFIG.presets[sel.value]; $("audit-mu").value = p.mu; $("audit-nu").value = p.nu;
  });
  sel.value = "gaussians-2d"; sel.dispatchEvent(new Event("change"));
  $("audit-file").addEventListener("change", () => auditUpload().catch(e => auditErrors(e)));
  $("audit-form").addEventListener("submit", ev => { ev.preventDefault(); auditRun(); });
  $("audit-cancel").addEventListener("click", () => post("/api/cancel", {view: "audit"}).catch(() => {}));
  $("audit-export-png").addEventListener("click", () => download("audit", "png", $("audit-error")));
  $("audit-export-json").addEventListener("click", () => download("audit", "json", $("audit-error")));
  if (!CONFIG.torch) { $("audit-error").textContent = "The audit view needs torch: pip install 'otgrid[torch]'."; $("audit-run").disabled = true; }
}

// ------------------------------------------------------------------ start
(async function main() {
  CONFIG = await get("/api/config");
  $("version").textContent = "otgrid " + CONFIG.version + " · session " + SESSION.slice(0, 6);
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  setupSco(); setupAudit(); setupCritic();
  document.body.dataset.ready = "1";
})();
