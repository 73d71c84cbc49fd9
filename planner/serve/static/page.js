// planner what-if page: read the levers, ask the server, swap the panels in. No framework, no network beyond
// this server. One request in flight per tab: moves made meanwhile are coalesced into the next request, so a
// dragged slider never queues stale solves. Timings (request -> DOM updated and painted) are kept in
// window.plannerTimings for the benchmark (benchmarks/serve_latency.py).
(() => {
  "use strict";
  const body = document.body;
  const interactive = body.dataset.mode === "interactive";
  const autoExplain = body.dataset.autoExplain === "1";
  const $ = (sel) => document.querySelector(sel);
  const HEADERS = { "Content-Type": "application/json", "X-Planner": "1" };
  let seq = 0; // the latest state sent
  let inFlight = false;
  let queued = false;
  let lastSent = null; // the state last asked for: a change event that changes nothing asks nothing
  window.plannerTimings = [];

  function setStatus(text, cls) {
    const s = $("#status");
    s.textContent = text;
    s.className = "status " + (cls || "");
  }

  function readState() {
    const st = { scenario: $("#scenario").value, policy: $("#policy").value, backlog: $("#backlog").checked,
                 programs: {}, fabs: {}, backend: {}, demand: {}, sets: $("#sets").value.split("\n") };
    for (const lv of document.querySelectorAll(".lever")) {
      const raw = lv.querySelector("input[type=number]").value.trim();
      st[lv.dataset.group][lv.dataset.name] = raw === "" ? "" : (isNaN(Number(raw)) ? raw : Number(raw));
    }
    return st;
  }

  function applyState(st) {
    st = st || {};
    $("#scenario").value = st.scenario || "";
    if (st.policy) $("#policy").value = st.policy;
    else $("#policy").selectedIndex = [...$("#policy").options].findIndex((o) => o.defaultSelected);
    $("#backlog").checked = st.backlog === undefined ? $("#backlog").defaultChecked : !!st.backlog;
    $("#sets").value = (st.sets || []).join("\n");
    for (const lv of document.querySelectorAll(".lever")) {
      const group = st[lv.dataset.group] || {};
      const neutral = lv.dataset.group === "programs" ? 0 : 1;
      const v = Object.prototype.hasOwnProperty.call(group, lv.dataset.name) ? group[lv.dataset.name] : neutral;
      lv.querySelector("input[type=number]").value = v;
      lv.querySelector("input[type=range]").value = v;
      lv.classList.toggle("moved", Number(v) !== neutral);
      readyLabel(lv);
    }
  }

  async function post(url, data) {
    const r = await fetch(url, { method: "POST", headers: HEADERS, body: JSON.stringify(data),
                                 credentials: "same-origin" });
    const type = r.headers.get("content-type") || "";
    if (!type.includes("json")) {
      if (!r.ok) throw new Error((await r.text()) || r.statusText);
      return r;
    }
    const out = await r.json();
    if (!r.ok) throw new Error(out.error || r.statusText);
    return out;
  }

  function render(p) {
    for (const [id, html] of Object.entries(p.panels || {})) {
      const el = document.getElementById(id);
      if (el && el.innerHTML !== html) el.innerHTML = html;
    }
    body.dataset.pending = p.pending || "";
  }

  const painted = () => new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));

  function showError(err) {
    $("#messages").innerHTML = "";
    const div = document.createElement("div");
    div.className = "msg err";
    div.textContent = String(err.message || err);
    $("#messages").appendChild(div);
    setStatus("error", "bad");
  }

  async function update() {
    if (inFlight) { queued = true; return; }
    const state = readState();
    const key = JSON.stringify(state);
    if (key === lastSent) return;
    lastSent = key;
    inFlight = true;
    body.dataset.busy = "1";
    const my = ++seq;
    setStatus(interactive ? "solving…" : "composing…", "busy");
    const t0 = performance.now();
    try {
      const p = await post(interactive ? "api/view" : "api/commands", { state, seq: my });
      render(p);
      await painted();
      const ms = performance.now() - t0;
      window.plannerTimings.push({ seq: my, kind: "view", ms, server: p.seconds || {} });
      body.dataset.seq = String(my);
      setStatus(interactive ? `updated in ${ms.toFixed(0)} ms` : "", "ok");
      if (p.pending && !queued) explain(state, my, t0);
    } catch (err) {
      body.dataset.seq = String(my);
      lastSent = null; // let the same state be asked again
      showError(err);
    } finally {
      inFlight = false;
      body.dataset.busy = "0";
      if (queued) { queued = false; update(); }
    }
  }

  // causes, then "what would help": one step per request while the levers stay where they are
  async function explain(state, my, t0) {
    body.dataset.explaining = "1";
    try {
      while (my === seq && !queued) {
        const p = await post("api/explain", { state, seq: my });
        if (my !== seq || queued) return;
        render(p);
        await painted();
        window.plannerTimings.push({ seq: my, kind: p.pending ? "causes" : "help",
                                     ms: performance.now() - t0, server: p.seconds || {} });
        body.dataset.explainedSeq = String(my);
        if (!p.pending) break;
      }
    } catch (err) {
      if (my === seq) showError(err);
    } finally {
      if (my === seq) body.dataset.explaining = "0";
    }
  }

  // ---- controls -------------------------------------------------------------------------------------------
  // "ready 2026Q4 → 2027Q1" next to a moved program (quarters as year*4 + q)
  function readyLabel(lv) {
    const base = lv.dataset.ready;
    const m = /^(\d{4})Q([1-4])$/.exec(base || "");
    const small = lv.querySelector("label small");
    if (!m || !small) return;
    const k = Math.round(Number(lv.querySelector("input[type=number]").value));
    if (!Number.isFinite(k) || k === 0) { small.textContent = `ready ${base}`; return; }
    const o = Number(m[1]) * 4 + Number(m[2]) - 1 + k;
    small.textContent = `ready ${base} → ${Math.floor(o / 4)}Q${(o % 4 + 4) % 4 + 1}`;
  }

  for (const lv of document.querySelectorAll(".lever")) {
    const range = lv.querySelector("input[type=range]");
    const num = lv.querySelector("input[type=number]");
    const neutral = lv.dataset.group === "programs" ? 0 : 1;
    range.addEventListener("input", () => {
      num.value = range.value;
      readyLabel(lv);
      lv.classList.toggle("moved", Number(range.value) !== neutral);
      update();
    });
    num.addEventListener("change", () => {
      if (num.value !== "" && !isNaN(Number(num.value))) range.value = num.value;
      readyLabel(lv);
      lv.classList.toggle("moved", Number(num.value) !== neutral);
      update();
    });
  }
  for (const id of ["#scenario", "#policy", "#backlog"]) $(id).addEventListener("change", update);
  $("#sets").addEventListener("change", update);
  $("#sets").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); update(); }
  });
  $("#reset").addEventListener("click", () => { applyState({}); update(); });
  for (const f of document.querySelectorAll("input.filter")) {
    f.addEventListener("input", () => {
      const q = f.value.trim().toLowerCase();
      for (const lv of f.parentElement.querySelectorAll(".lever")) {
        lv.hidden = q !== "" && !lv.dataset.name.toLowerCase().includes(q);
      }
    });
  }

  $("#command").addEventListener("click", async (ev) => {
    if (ev.target.id !== "copy") return;
    const text = $("#cmd").textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) { // not a secure context (another host than loopback): select it for Ctrl+C
      const r = document.createRange();
      r.selectNodeContents($("#cmd"));
      const s = getSelection();
      s.removeAllRanges();
      s.addRange(r);
      try { document.execCommand("copy"); } catch (_) { /* the text stays selected */ }
    }
    ev.target.textContent = "copied";
    setTimeout(() => { ev.target.textContent = "copy"; }, 1500);
  });

  if ($("#causes")) $("#causes").addEventListener("click", (ev) => {
    if (!ev.target.classList.contains("explain-btn")) return;
    ev.target.disabled = true;
    ev.target.textContent = "explaining… (this re-solves the plan many times)";
    explain(readState(), seq, performance.now());
  });

  $("#save").addEventListener("click", async () => {
    const out = $("#save-result");
    const name = $("#scen-name").value.trim();
    const toInput = $("#to-input").checked;
    if (toInput && !confirm(`Write scenario "${name}" into ${body.dataset.file} itself? ` +
                            "Only its Scenarios sheet changes; the other sheets stay as they are.")) return;
    out.className = "";
    out.textContent = "saving…";
    try {
      const r = await post("api/save", { state: readState(), name, to_input: toInput });
      out.className = "msg ok";
      out.textContent = "";
      const p = document.createElement("p");
      p.textContent = r.message + " Reproduce it with:";
      const c = document.createElement("code");
      c.id = "saved-cmd";
      c.textContent = r.command;
      out.append(p, c);
    } catch (err) {
      out.className = "msg err";
      out.textContent = String(err.message || err);
    }
  });

  $("#download").addEventListener("click", async (ev) => {
    const btn = ev.target;
    btn.disabled = true;
    const label = btn.textContent;
    btn.textContent = "writing the report…";
    try {
      const r = await post("api/report", { state: readState() });
      const blob = await r.blob();
      const cd = r.headers.get("content-disposition") || "";
      const m = /filename\*=UTF-8''([^;]+)/.exec(cd);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = m ? decodeURIComponent(m[1]) : "report.xlsx";
      document.body.appendChild(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 10000);
    } catch (err) {
      showError(err);
    } finally {
      btn.disabled = false;
      btn.textContent = label;
    }
  });

  // ---- start: put this session's levers back, then fetch what the first paint lacks --------------------------
  let saved = {};
  try { saved = JSON.parse(body.dataset.state || "{}"); } catch (_) { saved = {}; }
  applyState(saved);
  lastSent = JSON.stringify(readState());
  body.dataset.ready = "1";
  if (interactive && body.dataset.pending && autoExplain) explain(readState(), seq, performance.now());
})();
