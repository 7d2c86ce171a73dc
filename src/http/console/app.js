// The auditor console: hash routes over the public audit endpoints.
// Everything shown is built with textContent (never innerHTML), so no
// record field can become markup. The API key lives in sessionStorage and
// goes only into the Authorization header.
"use strict";

const KEY = "etax-audit-key";
const TZ = "+08:00";
const SVG = "http://www.w3.org/2000/svg";
const FILTERS = ["since", "until", "decision", "outcome", "kind", "action", "policy",
  "enterprise", "principal", "caller", "decision_id", "include_reads"];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function link(href, text) { return el("a", { href, text: String(text) }); }

async function api(path) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = "Bearer " + key;
  const r = await fetch(path, { headers, credentials: "omit", cache: "no-store" });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { const b = await r.json(); msg = r.status + ": " + b.error.message; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}

async function json(path) { return (await api(path)).json(); }

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) q.set(k, v);
  return q.toString();
}

// "2026-11-27 09:00" → "2026-11-27T09:00:00" (read at +08:00 by the server).
function clock(t) {
  t = t.trim().replace(" ", "T");
  return /T\d\d:\d\d$/.test(t) ? t + ":00" : t;
}

// Milliseconds since the epoch as a Beijing clock reads them.
function beijing(ms) {
  return new Date(ms + 8 * 3600 * 1000).toISOString().replace("Z", "+08:00");
}

function done(view) {
  const v = document.getElementById("view");
  v.dataset.ready = view;
}

function failed(view, e) {
  const v = document.getElementById("view");
  v.append(el("p", { class: "error", id: "error", text: e.message }));
  v.dataset.ready = view + "-error";
}

// ---- Overview -------------------------------------------------------------

const RANGES = { "1h": "minute", "24h": "hour", "7d": "hour", "30d": "day" };

async function overview(params) {
  const range = params.get("range") || "24h";
  const bucket = params.get("bucket") || RANGES[range] || "hour";
  const reads = params.get("include_reads") === "true";
  const v = view("overview");
  const pick = el("select", { id: "range" }, ...Object.keys(RANGES).map(r => option(r, r, r === range)));
  const per = el("select", { id: "bucket" }, ...["minute", "hour", "day"].map(b => option(b, "per " + b, b === bucket)));
  const inc = el("input", { type: "checkbox", id: "overview-reads" });
  inc.checked = reads;
  const go = () => { location.hash = "#/overview?" + query({ range: pick.value, bucket: per.value, include_reads: inc.checked ? "true" : "" }); };
  pick.addEventListener("change", () => { per.value = RANGES[pick.value]; go(); });
  per.addEventListener("change", go);
  inc.addEventListener("change", go);
  v.append(el("div", { class: "controls" }, el("label", {}, "Last ", pick), per,
    el("label", {}, inc, " auditors' reads")));
  const o = await json("/v1/audit/overview?" + query({ since: range, bucket, tz: TZ, include_reads: reads ? "true" : "" }));
  const c = o.counts;
  v.append(el("div", { class: "totals" },
    el("div", { class: "allow" }, el("span", { id: "total-allow", text: c.total.allow }), " allowed 允许"),
    el("div", { class: "deny" }, el("span", { id: "total-deny", text: c.total.deny }), " denied 拒绝"),
    el("div", {}, "through record ", link("#/record/" + c.through_seq, c.through_seq))));
  v.append(chart(c.series));
  v.append(el("div", { class: "grid" },
    table("Denials by policy 拒绝策略", "by-policy", c.by_policy, k => link("#/search?" + query({ policy: k, decision: "deny" }), k)),
    table("By kind 类型", "by-kind", c.by_kind, k => link("#/search?" + query({ kind: k }), k)),
    table("By calling system 调用方", "by-caller", c.by_caller, k => k === "" ? "(open mode)" : link("#/search?" + query({ caller: k }), k)),
    table("By outcome 结果", "by-outcome", c.by_outcome, k => k)));
  v.append(chain(o.chain));
  done("overview");
}

function option(value, text, selected) {
  const o = el("option", { value, text });
  o.selected = selected;
  return o;
}

function view(name) {
  const v = document.getElementById("view");
  v.replaceChildren();
  v.dataset.ready = "";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("here", a.id === "nav-" + name);
  return v;
}

// Stacked bars, allow under deny; a hand-drawn SVG, no library.
function chart(series) {
  const W = 900, H = 200, pad = 30;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + pad}`);
  svg.setAttribute("id", "chart");
  svg.setAttribute("role", "img");
  const max = Math.max(1, ...series.map(p => p.allow + p.deny));
  const w = (W - pad) / Math.max(1, series.length);
  const rect = (x, y, h, cls, title) => {
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", x); r.setAttribute("y", y);
    r.setAttribute("width", Math.max(1, w - 1)); r.setAttribute("height", h);
    r.setAttribute("class", cls);
    const t = document.createElementNS(SVG, "title");
    t.textContent = title;
    r.append(t);
    svg.append(r);
  };
  series.forEach((p, i) => {
    const x = pad + i * w;
    const ha = (p.allow / max) * H, hd = (p.deny / max) * H;
    const title = `${p.time}: ${p.allow} allowed, ${p.deny} denied`;
    if (p.allow) rect(x, H - ha, ha, "bar-allow", title);
    if (p.deny) rect(x, H - ha - hd, hd, "bar-deny", title);
  });
  const text = (x, y, s, anchor) => {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", x); t.setAttribute("y", y);
    t.setAttribute("class", "axis");
    if (anchor) t.setAttribute("text-anchor", anchor);
    t.textContent = s;
    svg.append(t);
  };
  text(0, 12, String(max));
  text(0, H, "0");
  if (series.length) {
    text(pad, H + 20, series[0].time.slice(0, 16).replace("T", " "));
    text(W, H + 20, series[series.length - 1].time.slice(0, 16).replace("T", " "), "end");
  }
  return el("figure", {}, svg, el("figcaption", {}, el("span", { class: "key-allow", text: "■ allow" }), " ", el("span", { class: "key-deny", text: "■ deny" })));
}

function table(title, id, rows, label) {
  const body = el("tbody");
  for (const r of rows) body.append(el("tr", {}, el("td", {}, label(r.key)), el("td", { class: "n", text: r.deny }), el("td", { class: "n", text: r.allow })));
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: "3", text: "none" })));
  return el("section", {}, el("h2", { text: title }),
    el("table", { id }, el("thead", {}, el("tr", {}, el("th", { text: "" }), el("th", { text: "deny" }), el("th", { text: "allow" }))), body));
}

function chain(ch) {
  const dl = el("dl", { id: "chain" });
  const row = (k, ...v) => dl.append(el("dt", { text: k }), el("dd", {}, ...v));
  const h = ch.head;
  row("Head 链头", h ? link("#/record/" + h.seq, "record " + h.seq) : "empty log", h ? " " + beijing(h.timestamp_ms) + " " + h.hash : "");
  const lv = ch.last_verify;
  row("Last verify 最近校验", lv ? el("span", { class: lv.ok ? "ok" : "bad", text: `${lv.verdict} · ${lv.records} records · ${lv.time}` }) : "not since the server started",
    lv && lv.problem ? el("span", {}, " first bad: ", link("#/record/" + lv.problem.seq, "record " + lv.problem.seq)) : "");
  const lc = ch.last_checkpoint;
  row("Last checkpoint 最近检查点", lc ? `record ${lc.checkpoint.seq} (${beijing(lc.checkpoint.timestamp_ms)}) ${lc.checkpoint.hash} · taken ${lc.time}` : "none taken since the server started");
  return el("section", {}, el("h2", { text: "Chain 哈希链" }), dl);
}

// ---- Search ---------------------------------------------------------------

async function search(params) {
  const v = view("search");
  const form = el("form", { id: "search-form", class: "filters" });
  const field = (name, label, input) => form.append(el("label", {}, label, input));
  const text = (name, ph) => el("input", { name, id: "f-" + name, placeholder: ph || "", value: params.get(name) || "" });
  const select = (name, opts) => {
    const s = el("select", { name, id: "f-" + name }, option("", "any", false));
    for (const o of opts) s.append(option(o, o, params.get(name) === o));
    return s;
  };
  field("since", "From (Beijing) 起", text("since", "2026-11-27 09:00 or 2h"));
  field("until", "To 止", text("until", "2026-11-27 18:00"));
  field("decision", "Decision 决定", select("decision", ["allow", "deny"]));
  field("outcome", "Outcome 结果", select("outcome", ["done", "refused", "failed"]));
  field("kind", "Kind 类型", text("kind", "authorize, login."));
  field("action", "Action 操作", text("action", "useFunction"));
  field("policy", "Policy id 策略", text("policy"));
  field("enterprise", "Enterprise 企业", text("enterprise", "credit code"));
  field("principal", "Principal (masked) 主体", text("principal"));
  field("caller", "Calling system 调用方", text("caller", "API key id"));
  field("decision_id", "Decision id", text("decision_id"));
  const reads = el("input", { type: "checkbox", name: "include_reads", id: "f-include_reads" });
  reads.checked = params.get("include_reads") === "true";
  field("include_reads", "Auditors' reads", reads);
  form.append(el("button", { type: "submit", id: "search-run", text: "Search 查询" }));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = {};
    for (const f of FILTERS) {
      const i = form.elements[f];
      p[f] = i.type === "checkbox" ? (i.checked ? "true" : "") : i.value.trim();
    }
    // Not ready until the new search is drawn (hashchange comes later).
    v.dataset.ready = "";
    location.hash = "#/search?" + query(p);
  });
  v.append(form);
  const filter = {};
  for (const f of FILTERS) {
    const x = params.get(f);
    if (x) filter[f] = (f === "since" || f === "until") ? clock(x) : x;
  }
  filter.tz = TZ;
  const after = params.get("after") || "0";
  const page = await json("/v1/audit/decisions?" + query({ ...filter, after, limit: 50 }));
  v.append(el("div", { class: "controls" },
    el("span", { id: "search-status", text: `${page.records.length} records after ${after}` }),
    after !== "0" ? el("button", { id: "page-first", text: "First", onclick: () => turn(params, "0") }) : "",
    page.next_after ? el("button", { id: "page-next", text: "Next page", onclick: () => turn(params, String(page.next_after)) }) : "",
    el("button", { id: "export-jsonl", text: "Export JSONL", onclick: () => exportAs(filter, "jsonl") }),
    el("button", { id: "export-csv", text: "Export CSV", onclick: () => exportAs(filter, "csv") })));
  v.append(records(page.records));
  done("search");
}

function turn(params, after) {
  params.set("after", after);
  location.hash = "#/search?" + params.toString();
}

function records(rs) {
  const body = el("tbody");
  for (const r of rs) {
    body.append(el("tr", { "data-seq": r.seq, class: r.decision },
      el("td", {}, link("#/record/" + r.seq, r.seq)), el("td", { text: beijing(r.timestamp_ms) }),
      el("td", { text: r.kind }), el("td", { text: r.principal }), el("td", { text: r.action }),
      el("td", { class: "decision", text: r.decision }), el("td", { text: (r.policies || []).join(", ") }),
      el("td", { text: r.outcome || "" }), el("td", { text: r.caller || "" })));
  }
  return el("table", { id: "results" }, el("thead", {}, el("tr", {},
    ...["seq", "time", "kind", "principal", "action", "decision", "policies", "outcome", "caller"].map(t => el("th", { text: t })))), body);
}

// The export endpoint streams the whole filter; the file is handed to the
// browser as a download without the key ever entering a URL.
async function exportAs(filter, format) {
  const r = await api("/v1/audit/export?" + query({ ...filter, format }));
  const url = URL.createObjectURL(await r.blob());
  const a = el("a", { href: url, download: "decisions." + format });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- Record ---------------------------------------------------------------

async function record(seq) {
  const v = view("record");
  const n = Number(seq);
  const page = await json("/v1/audit/decisions?" + query({ after: Math.max(0, n - 1), limit: 1, include_reads: "true", tz: TZ }));
  const r = page.records[0];
  if (!r || r.seq !== n) throw new Error("record " + seq + " is not in the log (pruned, or not written yet)");
  // The head from the overview's chain status: a checkpoint read would
  // count as one an auditor took.
  const status = await json("/v1/audit/overview?" + query({ since: "1m", bucket: "minute" }));
  const head = status.chain.head ? status.chain.head.seq : n;
  v.append(el("h2", { text: `Record ${r.seq} 记录` }),
    el("p", { id: "record-position" }, `Position ${r.seq} of ${head} in the chain · `,
      n > 1 ? link("#/record/" + (n - 1), "← previous") : "", " ",
      n < head ? link("#/record/" + (n + 1), "next →") : "", " · ",
      link("#/search?" + query({ principal: r.principal, include_reads: "true" }), "this principal's other records 同一主体")));
  const dl = el("dl", { id: "record-fields" });
  dl.append(el("dt", { text: "time (Beijing)" }), el("dd", { text: beijing(r.timestamp_ms) }));
  for (const [k, val] of Object.entries(r)) {
    dl.append(el("dt", { text: k }), el("dd", {}, typeof val === "object" ? el("pre", { text: JSON.stringify(val, null, 2) }) : String(val)));
  }
  v.append(dl);
  const section = el("section", { id: "record-policies" }, el("h2", { text: "Determining policies 决定策略" }));
  v.append(section);
  if (!r.policies.length) section.append(el("p", { text: "No policy determined this decision (a default deny, or a record without a Cedar question)." }));
  if (r.policies.length) {
    const set = await json("/v1/audit/policy/" + encodeURIComponent(r.policy_version));
    for (const id of r.policies) {
      const found = policySource(set, id);
      section.append(el("h3", { class: "policy-id", text: `@id("${id}")` }),
        el("p", { class: "file", text: found ? found.file + " · policy set " + set.version.slice(0, 12) : "not found in the archived set" }),
        el("pre", { class: "cedar", text: found ? found.text : "" }));
    }
  }
  done("record");
}

// Cedar statements end at a `;` outside strings and comments.
function statements(text) {
  const out = [];
  let start = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "/" && text[i + 1] === "/") { while (i < text.length && text[i] !== "\n") i++; }
    else if (c === ";") { out.push(text.slice(start, i + 1)); start = i + 1; }
  }
  return out;
}

// A statement without its comments (a comment can hold any text, an
// `@id(...)` look-alike included), strings kept.
function code(statement) {
  let out = "", inString = false;
  for (let i = 0; i < statement.length; i++) {
    const c = statement[i];
    if (inString) {
      if (c === "\\") { out += c + (statement[i + 1] || ""); i++; continue; }
      if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "/" && statement[i + 1] === "/") {
      while (i < statement.length && statement[i] !== "\n") i++;
      out += "\n";
      continue;
    }
    out += c;
  }
  return out;
}

// The statement's own `@id`: an annotation before its effect, its string
// unescaped (Cedar's escapes for quotes and backslashes are JSON's).
function statementId(statement) {
  const head = code(statement).split(/\b(?:permit|forbid)\b/)[0];
  const m = head.match(/@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)/);
  if (!m) return null;
  try { return JSON.parse(`"${m[1]}"`); } catch { return m[1]; }
}

function policySource(set, id) {
  for (const f of set.policy_files) {
    const s = statements(f.text).find(s => statementId(s) === id);
    if (s) return { file: f.file, text: s.replace(/^\s*\n/, "").trimEnd() };
  }
  return null;
}

// ---- Verify ---------------------------------------------------------------

function verify() {
  const v = view("verify");
  const out = el("div", { id: "verify-result" });
  const run = async () => {
    out.replaceChildren(el("p", { text: "Verifying… 校验中" }));
    v.dataset.ready = "";
    try {
      const r = await json("/v1/audit/verify");
      const dl = el("dl");
      const row = (k, ...x) => dl.append(el("dt", { text: k }), el("dd", {}, ...x));
      row("Verdict 结论", el("strong", { id: "verify-verdict", class: r.ok ? "ok" : "bad", text: r.verdict }));
      row("Records walked", String(r.records));
      row("Head", r.head ? `record ${r.head.seq} (${beijing(r.head.timestamp_ms)}) ${r.head.hash}` : "empty log");
      if (r.problem) {
        row("First bad record 首个异常记录", el("span", { id: "verify-problem" },
          link("#/record/" + r.problem.seq, "record " + r.problem.seq), ` ${r.problem.kind}: ${r.problem.detail}`, r.problem.time ? ` (${r.problem.time})` : ""));
      }
      if (r.last_verified) row("Last good record", link("#/record/" + r.last_verified.seq, "record " + r.last_verified.seq));
      if (r.live) row("Live log 在用日志", el("span", { id: "verify-live", text: r.live }));
      for (const w of r.warnings || []) row("Warning", w);
      out.replaceChildren(dl);
      done("verify");
    } catch (e) { out.replaceChildren(); failed("verify", e); }
  };
  v.append(el("p", { text: "Walks every frame and the hash chain of the log now, on the server." }),
    el("button", { id: "verify-run", text: "Run verification 运行校验", onclick: run }), out);
  v.dataset.ready = "verify-idle";
}

// ---- Key and routing ------------------------------------------------------

function showKey() {
  document.getElementById("key-state").textContent = sessionStorage.getItem(KEY) ? "key set for this session" : "no key (open mode on loopback)";
}

async function route() {
  const [path, qs] = (location.hash.slice(1) || "/overview").split("?");
  const params = new URLSearchParams(qs || "");
  const parts = path.split("/").filter(Boolean);
  const name = parts[0] || "overview";
  try {
    if (name === "search") await search(params);
    else if (name === "record") await record(parts[1]);
    else if (name === "verify") verify();
    else await overview(params);
  } catch (e) { failed(name, e); }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("key-form");
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const input = document.getElementById("key");
    if (input.value) sessionStorage.setItem(KEY, input.value);
    input.value = "";
    showKey();
    route();
  });
  document.getElementById("key-forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); showKey(); route(); });
  window.addEventListener("hashchange", route);
  showKey();
  route();
});
