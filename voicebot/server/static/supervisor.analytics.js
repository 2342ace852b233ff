// Analytics tab of the supervisor dashboard: trends per hour/day/week (GET /api/analytics), containment per intent
// and per-agent figures. Staff only (the tab is hidden from agents; the API refuses them).

import { barChart, lineChart } from "/static/supervisor.charts.js";

export function analyticsView({ h, api, $ }) {
  let request = 0;

  function range() {
    const form = new FormData($("analytics-form"));
    const bucket = String(form.get("bucket") || "day");
    const days = { hour: 1, day: 14, week: 84 }[bucket];
    const to = form.get("to") ? new Date(`${form.get("to")}T00:00:00`) : new Date();
    if (form.get("to")) to.setDate(to.getDate() + 1);
    const from = form.get("from") ? new Date(`${form.get("from")}T00:00:00`) : new Date(to.getTime() - days * 86400e3);
    return { bucket, from: from.toISOString(), to: to.toISOString() };
  }

  function label(bucket, key) {
    if (bucket === "hour") return key.slice(11, 13);
    const d = new Date(`${key}T00:00:00`);
    return Number.isNaN(d.getTime()) ? key : d.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  const pct = (v) => (v == null ? "–" : `${Math.round(v * 100)} %`);
  const secs = (v) => (v == null ? "–" : v >= 60 ? `${Math.floor(v / 60)} min ${Math.round(v % 60)} s` : `${Math.round(v)} s`);

  function rate(box, series, key, bucket, what) {
    const points = series.map((b) => ({ label: label(bucket, b.bucket), mean: b[key], max: null }));
    lineChart(box, points, { label: `${what} per ${bucket}: ${points.map((p) => `${p.label} ${pct(p.mean)}`).join(", ")}`,
      empty: key === "service_level" ? "No transfers to agents in this range." : "No calls in this range." });
    const legend = box.querySelector(".legend");
    if (legend) legend.remove();
  }

  function bars(box, series, key, bucket, what, unit = "") {
    const items = series.map((b) => ({ label: label(bucket, b.bucket), value: b[key] || 0,
      title: `${label(bucket, b.bucket)}: ${unit === "s" ? secs(b[key]) : b[key] ?? 0}` }));
    barChart(box, items, { label: `${what} per ${bucket}` });
  }

  async function load() {
    const r = range();
    const mine = ++request;
    $("analytics-note").textContent = "loading…";
    let data;
    try {
      data = await api(`/api/analytics?${new URLSearchParams(r)}`);
    } catch (e) {
      if (mine === request) $("analytics-note").textContent = `No analytics: ${e.message}`;
      return;
    }
    if (mine !== request) return;
    const s = data.series || [];
    const calls = s.reduce((a, b) => a + b.calls, 0);
    const contained = s.reduce((a, b) => a + b.contained, 0);
    const transfers = s.reduce((a, b) => a + b.transfers, 0);
    $("analytics-note").textContent = `${calls} calls, ${pct(calls ? contained / calls : null)} contained, ${transfers} transfers`;
    bars($("an-calls"), s, "calls", r.bucket, "Calls");
    rate($("an-containment"), s, "containment_rate", r.bucket, "Containment rate");
    bars($("an-aht"), s, "avg_handle_s", r.bucket, "Average handle time", "s");
    bars($("an-asa"), s, "avg_speed_of_answer_s", r.bucket, "Average speed of answer", "s");
    rate($("an-abandon"), s, "abandon_rate", r.bucket, "Abandon rate");
    rate($("an-sl"), s, "service_level", r.bucket, "Service level");
    bars($("an-transfers"), s, "transfers", r.bucket, "Transfers");
    rate($("an-frustration"), s, "avg_frustration", r.bucket, "Average frustration peak");
    $("an-intents").tBodies[0].replaceChildren(...(data.intents || []).map((i) => h("tr", {},
      h("td", {}, i.intent), h("td", { class: "num" }, String(i.calls)), h("td", { class: "num" }, String(i.contained)),
      h("td", { class: "num" }, pct(i.containment_rate)))));
    $("an-agents").tBodies[0].replaceChildren(...(data.agents || []).map((a) => h("tr", {},
      h("td", {}, a.agent_id), h("td", { class: "num" }, String(a.calls)), h("td", { class: "num" }, secs(a.avg_handle_s)),
      h("td", { class: "num" }, secs(a.avg_speed_of_answer_s)), h("td", { class: "num" }, String(a.scorecards_failed)))));
    $("an-intents-empty").hidden = (data.intents || []).length > 0;
    $("an-agents-empty").hidden = (data.agents || []).length > 0;
  }

  $("analytics-form").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  $("analytics-form").addEventListener("change", () => load());
  return { show: load };
}
