// Astra console: operators' view of executions across users (the hosted Julep
// console's job). Shown only to people the server calls operators
// (GET /api/console/access); every /api/console route checks that again.
// Routes: #console (the list) and #console/<execution id> (one execution).
//
// Stable selectors for tests:
//   [data-testid=console-link]     header link to the console (operators only)
//   [data-testid=console]          the console section
//   [data-testid=console-filters]  the filter form: [data-testid=console-status], [data-testid=console-task], [data-testid=console-user],
//   [data-testid=console-since], [data-testid=console-until]  the filters; [data-testid=console-apply]
//   [data-testid=console-row]      one execution (data-execution-id, data-status); its link opens it
//   [data-testid=console-more]     the next page; [data-testid=console-list-note] "No executions match." or an error
//   [data-testid=console-detail]   one execution; [data-testid=console-exec-status] its status,
//                                  [data-testid=console-error] its error in full,
//                                  [data-testid=console-task-version], [data-testid=console-agent-version] what it ran,
//                                  [data-testid=console-step] each step (data-type) with
//                                  [data-testid=step-name], [data-testid=step-duration] and
//                                  <details> [data-testid=step-input] / [data-testid=step-output]
//   [data-testid=console-message]  the message it answered, [data-testid=console-message-link] to it
//   [data-testid=console-cancel], [data-testid=console-rerun]  actions; [data-testid=console-notice] their result
"use strict";

(() => {
  const LIVE_MS = 1500;
  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
  const STATUSES = ["queued", "starting", "running", "awaiting_input", "succeeded", "failed", "cancelled"];

  const $ = (id) => document.getElementById(id);
  const el = (tag, props, ...children) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") n.className = v;
      else if (k === "text") n.textContent = v;
      else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) n.append(c);
    return n;
  };

  const c = { me: null, admin: false, liveTimer: 0, filters: {}, next: "", tasks: null, shown: "" };

  async function api(path, opts = {}) {
    const res = await fetch(path, { credentials: "same-origin", ...opts });
    let body = {};
    try {
      body = await res.json();
    } catch {
      // an empty or non-JSON answer
    }
    return { status: res.status, ok: res.ok, body };
  }

  const fmtTime = (v) => {
    const d = new Date(v);
    return isNaN(d) ? "" : d.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
  };
  const fmtDuration = (ms) => (typeof ms !== "number" ? "" : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`);

  document.addEventListener("astra:signed-in", async (ev) => {
    c.me = ev.detail || null;
    c.admin = false;
    try {
      const res = await api("/api/console/access");
      c.admin = res.ok && res.body.admin === true;
    } catch {
      c.admin = false;
    }
    document.body.classList.toggle("is-operator", c.admin);
    $("console-link").hidden = !c.admin;
    route();
  });
  document.addEventListener("astra:signed-out", () => {
    c.me = null;
    c.admin = false;
    document.body.classList.remove("is-operator");
    $("console-link").hidden = true;
    close();
  });
  window.addEventListener("hashchange", route);

  function route() {
    const h = decodeURIComponent(location.hash.slice(1));
    if (!c.admin || !h.startsWith("console")) {
      const wasOpen = !$("console").hidden;
      close();
      // A link from the console to a message: the conversation was hidden
      // when the browser looked for the anchor, so go there now.
      const target = wasOpen && h.startsWith("msg-") ? document.getElementById(h) : null;
      if (target) target.scrollIntoView({ block: "center" });
      return;
    }
    $("app").classList.add("in-console");
    $("console").hidden = false;
    const id = h.slice("console/".length);
    if (h.startsWith("console/") && id) showExecution(id);
    else showList();
  }

  function close() {
    clearTimeout(c.liveTimer);
    c.shown = "";
    $("app").classList.remove("in-console");
    $("console").hidden = true;
    $("console").replaceChildren();
  }

  // ---------- the list ----------

  async function showList() {
    clearTimeout(c.liveTimer);
    c.shown = "list";
    if (!c.tasks) {
      const res = await api("/api/console/tasks");
      c.tasks = res.ok ? res.body.tasks : [];
    }
    const f = c.filters;
    const taskSel = el("select", { id: "console-task", "data-testid": "console-task" },
      ...c.tasks.map((t) => el("option", { value: t.id, selected: f.task === t.id, text: `${t.name} (${t.agentName})` })));
    const statusSel = el("select", { id: "console-status", "data-testid": "console-status" },
      el("option", { value: "", text: "any" }),
      ...STATUSES.map((s) => el("option", { value: s, selected: f.status === s, text: s })));
    const form = el("form", { class: "console-filters", "data-testid": "console-filters" },
      el("label", { for: "console-task", text: "Task" }), taskSel,
      el("label", { for: "console-status", text: "Status" }), statusSel,
      el("label", { for: "console-user", text: "User" }),
      el("input", { id: "console-user", "data-testid": "console-user", type: "text", placeholder: "email or id", value: f.user || "" }),
      el("label", { for: "console-since", text: "From" }),
      el("input", { id: "console-since", "data-testid": "console-since", type: "datetime-local", value: f.since || "" }),
      el("label", { for: "console-until", text: "To" }),
      el("input", { id: "console-until", "data-testid": "console-until", type: "datetime-local", value: f.until || "" }),
      el("button", { type: "submit", "data-testid": "console-apply", text: "Apply" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      c.filters = { task: taskSel.value, status: statusSel.value, user: $("console-user").value.trim(),
        since: $("console-since").value, until: $("console-until").value };
      showList();
    });
    const body = el("tbody");
    const more = el("button", { type: "button", class: "small", "data-testid": "console-more", hidden: true, text: "More" });
    const note = el("p", { class: "hint", "data-testid": "console-list-note", role: "status" });
    $("console").replaceChildren(
      el("h2", { id: "console-title", text: "Executions" }), form,
      el("div", { class: "table-wrap" }, el("table", { class: "console-table" },
        el("thead", null, el("tr", null, ...["Started", "User", "Status", "Took", "Execution"].map((h) => el("th", { scope: "col", text: h })))),
        body)),
      note, more);
    let cursor = "";
    const load = async () => {
      const q = new URLSearchParams({ limit: "25" });
      if (f.task) q.set("task", f.task);
      if (f.status) q.set("status", f.status);
      if (f.user) q.set("user", f.user);
      if (f.since) q.set("since", new Date(f.since).toISOString().replace(/\.\d+Z$/, "Z"));
      if (f.until) q.set("until", new Date(f.until).toISOString().replace(/\.\d+Z$/, "Z"));
      if (cursor) q.set("cursor", cursor);
      const res = await api(`/api/console/executions?${q}`);
      if (!res.ok) {
        note.textContent = res.body.error || `Could not list executions (${res.status}).`;
        return;
      }
      for (const x of res.body.executions) {
        body.append(el("tr", { "data-testid": "console-row", "data-execution-id": x.id, "data-status": x.status },
          el("td", null, el("time", { datetime: x.createdAt, text: fmtTime(x.createdAt) })),
          el("td", { text: x.userEmail || x.userId || "-" }),
          el("td", null, el("span", { class: "status", "data-status": x.status, text: x.status })),
          el("td", { text: fmtDuration(x.durationMs) }),
          el("td", null, el("a", { href: `#console/${encodeURIComponent(x.id)}`, text: x.id }))));
      }
      cursor = res.body.next || "";
      more.hidden = !cursor;
      note.textContent = body.children.length ? "" : "No executions match.";
    };
    more.addEventListener("click", load);
    await load();
  }

  // ---------- one execution ----------

  function json(v) {
    return el("pre", { class: "json" }, JSON.stringify(v, null, 2));
  }

  async function showExecution(id) {
    clearTimeout(c.liveTimer);
    c.shown = id;
    const res = await api(`/api/console/executions/${encodeURIComponent(id)}`);
    if (c.shown !== id) return; // the operator moved on meanwhile
    if (!res.ok) {
      $("console").replaceChildren(el("p", { class: "error", text: res.body.error || `Could not load the execution (${res.status}).` }),
        el("a", { href: "#console", text: "All executions" }));
      return;
    }
    const d = res.body;
    const x = d.execution || {};
    // Keep what the operator opened across live refreshes.
    const open = new Set([...document.querySelectorAll("#console details[open]")].map((n) => n.dataset.key));
    const notice = $("console-notice") ? $("console-notice").textContent : "";
    const dl = el("dl", { class: "console-facts" },
      el("dt", { text: "Execution" }), el("dd", { text: x.id }),
      el("dt", { text: "Status" }), el("dd", null, el("span", { class: "status", "data-status": x.status, "data-testid": "console-exec-status", text: x.status })),
      el("dt", { text: "Started" }), el("dd", { text: fmtTime(x.created_at) }),
      el("dt", { text: "Updated" }), el("dd", { text: fmtTime(x.updated_at) }));
    if (d.task) dl.append(el("dt", { text: "Task" }), el("dd", { "data-testid": "console-task-version",
      text: `${d.task.name} · ${d.task.id} · version of ${fmtTime(d.task.updatedAt)}` }));
    if (d.agent) dl.append(el("dt", { text: "Agent" }), el("dd", { "data-testid": "console-agent-version",
      text: `${d.agent.name} (${d.agent.model || "no model"}) · ${d.agent.id} · version of ${fmtTime(d.agent.updatedAt)}` }));
    const parts = [el("p", null, el("a", { href: "#console", text: "← All executions" })),
      el("h2", { id: "console-title", text: "Execution" }), dl];
    if (x.error) parts.push(el("h3", { text: "Error" }), el("pre", { class: "console-error", "data-testid": "console-error", text: x.error }));
    if (d.message) {
      const m = d.message;
      const own = c.me && m.userId === c.me.id;
      parts.push(el("section", { class: "console-message", "data-testid": "console-message" },
        el("h3", { text: "Message" }),
        el("p", { class: "body", text: m.content }),
        el("p", { class: "hint", text: `${m.userEmail || m.userId} · ${m.status} · ${m.attempts} attempt(s) · ${fmtTime(m.createdAt)}` +
          (m.retryOf ? ` · retry of ${m.retryOf}` : "") + (m.rerunOf ? ` · re-run of ${m.rerunOf}` : "") }),
        m.lastError ? el("pre", { class: "console-error", text: m.lastError }) : null,
        own ? el("a", { href: `#msg-${m.id}`, "data-testid": "console-message-link", text: "Show in the conversation" })
          : el("span", { class: "hint", "data-testid": "console-message-link", text: `message ${m.id} (another person's conversation)` })));
    }
    const actions = el("p", { class: "console-actions" });
    if (!TERMINAL.has(x.status)) {
      actions.append(el("button", { type: "button", class: "small", "data-testid": "console-cancel", text: "Cancel",
        onclick: () => act(id, "cancel", "Cancelled.") }));
    }
    if (d.message) {
      actions.append(el("button", { type: "button", class: "small", "data-testid": "console-rerun", text: "Re-run",
        onclick: () => act(id, "rerun", "Sent again as a new message.") }));
    }
    parts.push(actions, el("p", { id: "console-notice", class: "hint", role: "status", "data-testid": "console-notice", text: notice }));
    const steps = (d.steps || []).map((s, i) => {
      const key = (k) => `${i}:${k}`;
      const det = (k, label, v) => {
        const n = el("details", { "data-testid": `step-${k}` }, el("summary", { text: label }), json(v === undefined ? null : v));
        n.dataset.key = key(k);
        if (open.has(key(k))) n.open = true;
        return n;
      };
      return el("li", { class: "console-step", "data-testid": "console-step", "data-type": s.type },
        el("div", { class: "console-step-head" },
          el("strong", { "data-testid": "step-name", text: s.name }),
          el("span", { class: "hint", text: s.type }),
          el("span", { "data-testid": "step-duration", text: fmtDuration(s.durationMs) }),
          el("span", { class: "hint", text: typeof s.retries === "number" ? `${s.retries} retries` : "" })),
        s.error ? el("pre", { class: "console-error", text: s.error }) : null,
        det("input", "Input", s.input), det("output", "Output", s.output));
    });
    parts.push(el("h3", { text: "Timeline" }), el("ol", { class: "console-steps" }, ...steps));
    $("console").replaceChildren(...parts);
    // Live while running.
    if (!TERMINAL.has(x.status)) c.liveTimer = setTimeout(() => c.shown === id && showExecution(id), LIVE_MS);
  }

  async function act(id, what, done) {
    const res = await api(`/api/console/executions/${encodeURIComponent(id)}/${what}`, { method: "POST" });
    const n = $("console-notice");
    if (n) n.textContent = res.ok ? done : res.body.error || `Failed (${res.status}).`;
    if (res.ok && what === "cancel") showExecution(id);
  }
})();
