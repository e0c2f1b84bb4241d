// Astra dashboard: sign-in, the live conversation, each sent message's state,
// and the execution panel. Plain JavaScript, no build step.
//
// Stable selectors for tests (do not rename without updating the browser tests):
//   [data-testid=boot]            shown while the page finds out who is signed in
//   [data-testid=signin]          the sign-in screen
//   [data-testid=login-google]    "Sign in with Google" link (when /api/auth/providers says google)
//   [data-testid=devlogin-form]   the dev login form (when devLogin is enabled)
//   [data-testid=login-email]     its email input;  [data-testid=login-name] its name input
//   [data-testid=login-submit]    its submit button
//   [data-testid=signin-error]    sign-in error text
//   [data-testid=no-providers]    shown when neither Google nor dev login is enabled
//   [data-testid=app]             the signed-in screen
//   [data-testid=conn-state]      connection state; attribute data-state is one of
//                                 connecting | live | reconnecting | offline
//   [data-testid=who]             the signed-in user's name/email
//   [data-testid=sign-out]        sign-out button
//   [data-testid=messages]        the conversation list
//   [data-testid=empty]           "No messages yet" (shown while the list is empty)
//   [data-testid=message]         one stored event; attributes data-event-id, data-role
//                                 (assistant | user | system) and, when known, data-outbox-id
//   [data-testid=message-streaming]  a reply still streaming (messages:delta); data-outbox-id
//   [data-testid=sent-message]    a sent message (outbox row) not mirrored as a user event;
//                                 data-outbox-id
//   [data-testid=outbox-status]   a sent message's state; attribute data-status is one of
//                                 pending | processing | delivered | error
//   [data-testid=last-error]      why an error state happened, in a person's words (the raw
//                                 error is for operators: the console, logs, astra executions show)
//   [data-testid=retry]           Retry on a failed message: sends the same text again
//   [data-testid=retried-as]      on a failed message sent again: a link to the new one
//   [data-testid=retry-of]        on a message sent again: a link to the failed one
//   [data-testid=show-execution]  button opening the execution panel of a sent message
//   [data-testid=execution-panel] the panel (Escape closes it); [data-testid=execution-id],
//                                 [data-testid=execution-status], [data-testid=transition] rows
//                                 (data-type) with [data-testid=step-name] and [data-testid=step-duration]
//   [data-testid=audio]           audio player of an assistant reply with metadata.audioUrl
//   [data-testid=composer]        the message textarea;  [data-testid=send] its send button
//   [data-testid=counter]         "n / 2000" character counter (class "over" past the limit)
//   [data-testid=composer-error]  why the last send failed
//   [data-testid=app-error]       socket/server error banner
//   [data-testid=console-link]    the header's link to the operators' console, [data-testid=console]
//                                 its section, [data-testid=open-console] a panel's link into it
//                                 (console.js runs them and lists its own selectors)
"use strict";

(() => {
  const MAX_CHARS = 2000;
  const HEARTBEAT_MS = 25000;
  const POLL_MS = 1500;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const el = (tag, props, ...children) => {
    const n = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") n.className = v;
        else if (k === "text") n.textContent = v;
        else if (k === "dataset") {
          for (const [dk, dv] of Object.entries(v)) if (dv !== undefined && dv !== null) n.dataset[dk] = dv;
        }
        else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
        else n.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const c of children) if (c !== null && c !== undefined) n.append(c);
    return n;
  };

  const state = {
    user: null,
    events: new Map(),      // event id -> event
    outbox: new Map(),      // outbox id -> {id, content, createdAt, status, lastError, executionId}
    localSent: new Set(),   // outbox ids sent from this page (always shown)
    streams: new Map(),     // outbox id -> {chunks: [], executionId}
    finished: new Set(),    // outbox ids whose assistant reply has arrived
    openPanels: new Set(),  // outbox ids whose execution panel is open
    lastEventId: "",
    ws: null,
    attempt: 0,
    reconnectTimer: 0,
    heartbeatTimer: 0,
    pollTimer: 0,
    polling: false,
    sending: false,
    stopped: true,
    offline: false,         // the browser said "offline": wait for "online" before reconnecting
  };

  // ---------- helpers ----------

  const chars = (s) => Array.from(s).length; // code points, as the server counts runes
  const isTerminal = (s) => s === "delivered" || s === "error";
  const normStatus = (s) => (s === "failed" ? "error" : s || "pending");
  const meta = (e) => (e && e.metadata && typeof e.metadata === "object" ? e.metadata : {});
  const outboxIdOf = (e) => {
    const m = meta(e);
    return e.outboxId || m.outboxId || m.outbox_id || "";
  };
  const timeOf = (v) => {
    const d = new Date(v);
    return isNaN(d) ? null : d;
  };
  const fmtTime = (v) => {
    const d = timeOf(v);
    return d ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
  };
  const safeURL = (u) => {
    try {
      const p = new URL(u, location.href);
      return p.protocol === "https:" || p.protocol === "http:" || p.protocol === "blob:" ? p.href : "";
    } catch {
      return "";
    }
  };

  async function api(path, opts = {}) {
    const res = await fetch(path, {
      credentials: "same-origin",
      headers: opts.body ? { "Content-Type": "application/json" } : {},
      ...opts,
    });
    let body = null;
    const text = await res.text();
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = { error: text };
      }
    }
    return { status: res.status, ok: res.ok, body: body || {} };
  }

  function show(screen) {
    for (const id of ["boot", "signin", "app"]) $(id).hidden = id !== screen;
  }

  function showError(node, msg) {
    node.textContent = msg || "";
    node.hidden = !msg;
  }

  // ---------- sign-in ----------

  async function boot() {
    show("boot");
    let res;
    try {
      res = await api("/api/auth/session");
    } catch {
      show("signin");
      showError($("signin-error"), "Astra is not reachable. Check your connection and reload.");
      return;
    }
    if (res.ok && res.body.user) {
      startApp(res.body.user);
    } else {
      await showSignIn();
    }
  }

  async function showSignIn(msg) {
    stopApp();
    show("signin");
    showError($("signin-error"), msg || "");
    let p = { google: false, devLogin: false };
    try {
      const res = await api("/api/auth/providers");
      if (res.ok) p = res.body;
    } catch {
      showError($("signin-error"), "Astra is not reachable. Check your connection and reload.");
    }
    $("google").hidden = !p.google;
    $("devlogin").hidden = !p.devLogin;
    $("no-providers").hidden = p.google || p.devLogin;
    const first = p.devLogin ? $("login-email") : p.google ? $("google") : null;
    if (first) first.focus();
  }

  $("devlogin").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const email = $("login-email").value.trim();
    const name = $("login-name").value.trim();
    if (!email) {
      showError($("signin-error"), "Enter an email address.");
      $("login-email").focus();
      return;
    }
    $("login-submit").disabled = true;
    try {
      const res = await api("/api/auth/dev-login", { method: "POST", body: JSON.stringify({ email, name }) });
      if (!res.ok) {
        showError($("signin-error"), res.body.error || `Sign-in failed (${res.status}).`);
        return;
      }
      showError($("signin-error"), "");
      startApp(res.body.user);
    } catch {
      showError($("signin-error"), "Astra is not reachable. Try again.");
    } finally {
      $("login-submit").disabled = false;
    }
  });

  $("signout").addEventListener("click", async () => {
    $("signout").disabled = true;
    try {
      await api("/api/auth/sign-out", { method: "POST" });
    } catch {
      // Signing out locally still makes sense when the server is away.
    } finally {
      $("signout").disabled = false;
    }
    await showSignIn();
  });

  // ---------- app lifecycle ----------

  function startApp(user) {
    state.user = user;
    state.events.clear();
    state.outbox.clear();
    state.localSent.clear();
    state.streams.clear();
    state.finished.clear();
    state.openPanels.clear();
    state.lastEventId = "";
    state.attempt = 0;
    state.stopped = false;
    $("messages").replaceChildren();
    $("who").textContent = user.name ? `${user.name} (${user.email})` : user.email;
    showError($("app-error"), "");
    show("app");
    updateComposer();
    $("composer").focus();
    connect();
    // console.js (operators) listens for these.
    document.dispatchEvent(new CustomEvent("astra:signed-in", { detail: user }));
  }

  function stopApp() {
    if (state.user) document.dispatchEvent(new CustomEvent("astra:signed-out"));
    state.stopped = true;
    state.user = null;
    clearTimeout(state.reconnectTimer);
    clearInterval(state.heartbeatTimer);
    clearTimeout(state.pollTimer);
    if (state.ws) {
      const ws = state.ws;
      state.ws = null;
      ws.close(1000, "signed out");
    }
  }

  // ---------- connection ----------

  function setConn(s) {
    const labels = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
    $("conn").dataset.state = s;
    $("conn-text").textContent = labels[s];
  }

  function connect() {
    if (state.stopped) return;
    clearTimeout(state.reconnectTimer);
    if (isOffline()) {
      setConn("offline");
      return;
    }
    setConn(state.attempt === 0 ? "connecting" : "reconnecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = state.lastEventId ? `?after=${encodeURIComponent(state.lastEventId)}` : "";
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/api/responder/socket${q}`);
    } catch {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    ws.onopen = () => {
      if (state.ws !== ws) return;
      clearTimeout(state.pollTimer); // the socket pushes the states from here
      state.attempt = 0;
      setConn("live");
      showError($("app-error"), "");
      clearInterval(state.heartbeatTimer);
      state.heartbeatTimer = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "heartbeat" }));
      }, HEARTBEAT_MS);
    };
    ws.onmessage = (m) => {
      if (state.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(m.data);
      } catch {
        return;
      }
      onFrame(frame);
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      clearInterval(state.heartbeatTimer);
      poll(); // states keep coming while the socket is away
      scheduleReconnect();
    };
    // onerror is always followed by onclose, which reconnects.
  }

  async function scheduleReconnect() {
    if (state.stopped) return;
    if (isOffline()) {
      setConn("offline");
      return;
    }
    setConn("reconnecting");
    state.attempt++;
    // A refused upgrade looks like any other close: ask whether the session is gone.
    if (state.attempt >= 2) {
      try {
        const res = await api("/api/auth/session");
        if (res.status === 401) {
          await showSignIn("Your session has ended. Please sign in again.");
          return;
        }
      } catch {
        // The server is unreachable; keep backing off.
      }
    }
    if (state.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(state.attempt - 1, 10));
    const delay = base / 2 + Math.random() * (base / 2); // jitter so tabs do not reconnect in step
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  const isOffline = () => state.offline || !navigator.onLine;

  window.addEventListener("offline", () => {
    state.offline = true;
    if (state.stopped) return;
    setConn("offline");
    if (state.ws) state.ws.close();
  });
  window.addEventListener("online", () => {
    state.offline = false;
    if (state.stopped) return;
    state.attempt = Math.max(state.attempt, 1);
    connect();
  });

  function onFrame(f) {
    switch (f.type) {
      case "messages:init":
        for (const e of Array.isArray(f.data) ? f.data : []) addEvent(e, false);
        render();
        break;
      case "messages:append":
        if (f.data) {
          addEvent(f.data, true);
          render();
        }
        break;
      case "messages:outbox":
        // The state of the person's messages, pushed by the server (after
        // init and resume, and at every change): no polling while live.
        if (Array.isArray(f.data)) mergeOutbox(f.data);
        break;
      case "messages:delta":
        if (f.data) onDelta(f.data);
        break;
      case "error":
        showError($("app-error"), f.error || "The server reported an error.");
        break;
      case "heartbeat":
      default:
        break;
    }
  }

  // ---------- conversation ----------

  function eventKey(e) {
    const d = timeOf(e.createdAt);
    return [d ? d.getTime() : 0, e.id || ""];
  }
  const before = (a, b) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

  // addEvent stores an event once (dedupe by id) and reports whether it was new.
  function addEvent(e, live) {
    if (!e || !e.id || state.events.has(e.id)) return false;
    state.events.set(e.id, e);
    if (!state.lastEventId || before(eventKey(state.events.get(state.lastEventId) || {}), eventKey(e))) {
      state.lastEventId = e.id;
    }
    const ob = outboxIdOf(e);
    if (ob && e.role === "assistant") {
      state.finished.add(ob);
      const s = state.streams.get(ob);
      if (s && s.node) s.node.remove();
      state.streams.delete(ob);
    }
    if (live && e.role !== "user") {
      const who = e.role === "assistant" ? "Astra" : "System";
      $("announcer").textContent = `${who}: ${e.content || ""}`;
    }
    return true;
  }

  function onDelta(d) {
    const ob = d.outboxId;
    if (!ob || state.finished.has(ob) || typeof d.delta !== "string") return;
    let s = state.streams.get(ob);
    if (!s) {
      s = { chunks: [], executionId: d.executionId || "", node: null };
      state.streams.set(ob, s);
    }
    const i = Number.isInteger(d.index) && d.index >= 0 ? d.index : s.chunks.length;
    s.chunks[i] = d.delta; // a repeated index replaces, so a resent delta does not duplicate text
    // A merged delta holds `count` fragments from `index` on: their slots are filled.
    const n = Number.isInteger(d.count) && d.count > 1 ? Math.min(d.count, 100000) : 1;
    for (let k = 1; k < n; k++) s.chunks[i + k] = "";
    if (!s.node) {
      s.node = el("li", { class: "msg assistant streaming", "aria-busy": "true",
        dataset: { testid: "message-streaming", outboxId: ob, role: "assistant" } },
        el("div", { class: "meta" }, el("span", { class: "who-label", text: "Astra" }), el("span", { text: "typing…" })),
        el("p", { class: "body" }));
      $("messages").append(s.node);
      $("empty").hidden = true;
      scrollToEnd();
    }
    s.node.querySelector(".body").textContent = s.chunks.join("");
    scrollToEnd(true);
  }

  // Which outbox rows are shown as their own "sent" bubble: those without a
  // user event mirroring them, sent from this page, answered by an event in
  // the loaded history (a message always predates its reply), or recent
  // enough to sit inside that history.
  function sentRows() {
    const mirrored = new Set();
    const answered = new Set();
    let oldest = null;
    for (const e of state.events.values()) {
      const ob = outboxIdOf(e);
      if (ob && e.role === "user") mirrored.add(ob);
      else if (ob) answered.add(ob);
      const k = eventKey(e);
      if (!oldest || before(k, oldest)) oldest = k;
    }
    const rows = [];
    for (const m of state.outbox.values()) {
      if (mirrored.has(m.id)) continue;
      const t = timeOf(m.createdAt);
      if (state.localSent.has(m.id) || answered.has(m.id) || !oldest || (t && t.getTime() >= oldest[0])) rows.push(m);
    }
    return rows;
  }

  // render reconciles the list with the state: nodes are keyed and reused, so
  // open panels and focus survive updates.
  function render() {
    const list = $("messages");
    const items = [];
    for (const e of state.events.values()) items.push({ key: "e:" + e.id, sort: eventKey(e), kind: "event", v: e });
    for (const m of sentRows()) items.push({ key: "o:" + m.id, sort: eventKey(m), kind: "sent", v: m });
    items.sort((a, b) => (before(a.sort, b.sort) ? -1 : before(b.sort, a.sort) ? 1 : 0));

    const existing = new Map();
    for (const n of list.children) if (n.dataset.key) existing.set(n.dataset.key, n);
    const wanted = new Set(items.map((i) => i.key));
    for (const [k, n] of existing) if (!wanted.has(k)) n.remove();

    const atEnd = nearEnd();
    let prev = null;
    for (const it of items) {
      let n = existing.get(it.key);
      if (!n) n = it.kind === "event" ? eventNode(it.v) : sentNode(it.v);
      n.dataset.key = it.key;
      updateStatus(n);
      const want = prev ? prev.nextSibling : list.firstChild;
      if (want !== n) list.insertBefore(n, want);
      prev = n;
    }
    // Streaming bubbles stay last, after stored messages.
    for (const s of state.streams.values()) if (s.node) list.append(s.node);
    $("empty").hidden = list.children.length > 0;
    if (atEnd) scrollToEnd();
  }

  function roleLabel(role) {
    return role === "assistant" ? "Astra" : role === "user" ? "You" : "System";
  }

  function eventNode(e) {
    const role = ["assistant", "user", "system"].includes(e.role) ? e.role : "system";
    const ob = outboxIdOf(e);
    const m = meta(e);
    const n = el("li", { class: `msg ${role}`, id: ob && role === "user" ? `msg-${ob}` : undefined,
      dataset: { testid: "message", eventId: e.id, role, outboxId: ob || undefined } },
      el("div", { class: "meta" },
        el("span", { class: "who-label", text: roleLabel(role) }),
        el("time", { datetime: e.createdAt || "", text: fmtTime(e.createdAt) })),
      el("p", { class: "body", text: e.content || "" }));
    const audio = m.audioUrl ? safeURL(m.audioUrl) : "";
    if (audio && role === "assistant") {
      n.append(el("audio", { controls: true, preload: "none", src: audio, "data-testid": "audio",
        "aria-label": "Listen to this reply" }));
    }
    if (ob) n.append(actionsFor(ob, role === "user"));
    return n;
  }

  function sentNode(m) {
    return el("li", { class: "msg sent", id: `msg-${m.id}`, dataset: { testid: "sent-message", outboxId: m.id, role: "user" } },
      el("div", { class: "meta" },
        el("span", { class: "who-label", text: "You" }),
        el("time", { datetime: m.createdAt || "", text: fmtTime(m.createdAt) })),
      el("p", { class: "body", text: m.content || "" }),
      actionsFor(m.id, true));
  }

  // actionsFor is the status badge (on the person's own message) and the
  // execution panel toggle of an outbox row.
  function actionsFor(outboxId, withStatus) {
    const box = el("div", { class: "actions", dataset: { outboxId } });
    if (withStatus) {
      box.append(el("span", { class: "status", "data-testid": "outbox-status", dataset: { status: "pending" }, text: "pending" }));
    }
    const btn = el("button", { type: "button", class: "small", "data-testid": "show-execution",
      "aria-expanded": "false", text: "Execution" });
    btn.addEventListener("click", () => togglePanel(outboxId, btn));
    box.append(btn);
    return box;
  }

  function updateStatus(node) {
    const badge = node.querySelector("[data-testid=outbox-status]");
    if (!badge) return;
    const ob = node.dataset.outboxId;
    const m = state.outbox.get(ob);
    // A row older than the latest 50 is not listed: delivered if its reply is here, else unknown.
    const s = m ? m.status : state.finished.has(ob) ? "delivered" : "";
    badge.hidden = !s;
    if (s && badge.dataset.status !== s) {
      badge.dataset.status = s;
      badge.textContent = s;
    }
    let errNode = node.querySelector("[data-testid=last-error]");
    const msg = m && s === "error" ? readableError(m.lastError) : "";
    if (msg && !errNode) {
      errNode = el("p", { class: "last-error", "data-testid": "last-error" });
      node.querySelector(".actions").after(errNode);
    }
    if (errNode) {
      errNode.textContent = msg;
      errNode.hidden = !msg;
    }
    updateRetry(node, ob, s);
  }

  // readableError says in a person's words why their message got no answer;
  // the engine's error stays for operators.
  function readableError(raw) {
    const r = String(raw || "");
    if (/\b429\b|rate limit|too many requests/i.test(r)) return "Astra is busy right now. Please try again in a moment.";
    if (/budget|max_steps|max_duration|too large|exceeds|exceeded/i.test(r)) {
      return "This message needed more work than Astra allows for one answer. Try a shorter or simpler message.";
    }
    if (/model|completion|timeout|timed out|deadline|unavailable|connection|\b5\d\d\b/i.test(r)) {
      return "Astra couldn't reach its language model, so this message got no answer. Please try again.";
    }
    return "Astra couldn't answer this message. Please try again.";
  }

  // updateRetry keeps a failed message's Retry action and the links between
  // a failed message and the one that sent it again.
  function updateRetry(node, ob, s) {
    const actions = node.querySelector(".actions");
    if (!actions) return;
    const m = state.outbox.get(ob);
    const again = [...state.outbox.values()].find((o) => o.retryOf === ob);
    let btn = node.querySelector("[data-testid=retry]");
    if (s === "error" && !again && !btn) {
      btn = el("button", { type: "button", class: "small", "data-testid": "retry", text: "Retry",
        "aria-label": "Send this message again" });
      btn.addEventListener("click", () => retry(ob, btn));
      actions.prepend(btn);
    } else if (btn && (s !== "error" || again)) {
      btn.remove();
    }
    let link = node.querySelector("[data-testid=retried-as]");
    if (again && !link) {
      link = el("a", { class: "retry-link", "data-testid": "retried-as", href: `#msg-${again.id}`, text: "Sent again below" });
      actions.append(link);
    }
    let back = node.querySelector("[data-testid=retry-of]");
    if (m && m.retryOf && !back) {
      back = el("a", { class: "retry-link", "data-testid": "retry-of", href: `#msg-${m.retryOf}`, text: "Retry of an earlier message" });
      actions.append(back);
    }
  }

  async function retry(ob, btn) {
    const m = state.outbox.get(ob);
    if (!m || state.sending) return;
    btn.disabled = true;
    const ok = await postMessage(m.content, { retryOf: ob });
    if (!ok) btn.disabled = false;
  }

  function nearEnd() {
    const c = document.querySelector(".conversation");
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }
  function scrollToEnd(onlyIfNear) {
    const c = document.querySelector(".conversation");
    if (onlyIfNear && !nearEnd()) return;
    c.scrollTop = c.scrollHeight;
  }

  // ---------- sent messages: status polling ----------

  // live reports whether the socket is open: the server then pushes every
  // state change (messages:outbox), and nothing is polled.
  const live = () => !!state.ws && state.ws.readyState === WebSocket.OPEN;

  // mergeOutbox takes rows as GET /api/responder/messages lists them.
  function mergeOutbox(rows) {
    for (const m of rows) {
      if (!m || !m.id) continue;
      // States can arrive out of order (the socket and a poll, two
      // publishers): an older one never replaces a newer one.
      const cur = state.outbox.get(m.id);
      if (cur && cur.updatedAt && m.updatedAt && m.updatedAt < cur.updatedAt) continue;
      state.outbox.set(m.id, { ...state.outbox.get(m.id), ...m, status: normStatus(m.status) });
    }
    render();
    for (const ob of state.openPanels) loadExecution(ob, false);
  }

  // poll reads the caller's outbox rows now, then again while any is not
  // terminal, only while the socket is not live. Overlapping calls
  // collapse into one.
  async function poll() {
    if (state.stopped || state.polling || live()) return;
    state.polling = true;
    clearTimeout(state.pollTimer);
    try {
      const res = await api("/api/responder/messages");
      if (res.status === 401) {
        await showSignIn("Your session has ended. Please sign in again.");
        return;
      }
      if (res.ok && Array.isArray(res.body.messages)) mergeOutbox(res.body.messages);
    } catch {
      // Try again on the next tick.
    } finally {
      state.polling = false;
    }
    if (state.stopped || live()) return;
    const waiting = [...state.outbox.values()].some((m) => !isTerminal(m.status));
    if (waiting) state.pollTimer = setTimeout(poll, POLL_MS);
  }

  // ---------- execution panel ----------

  function togglePanel(outboxId, btn) {
    const box = btn.closest(".actions");
    let panel = box.parentElement.querySelector("[data-testid=execution-panel]");
    if (panel) {
      panel.remove();
      if (!document.querySelector(`[data-testid=execution-panel][data-outbox-id="${CSS.escape(outboxId)}"]`)) {
        state.openPanels.delete(outboxId);
      }
      btn.setAttribute("aria-expanded", "false");
      return;
    }
    panel = el("section", { class: "exec", "data-testid": "execution-panel", "aria-label": "Execution details",
      "aria-live": "polite", dataset: { outboxId } }, el("p", { class: "hint", text: "Loading execution…" }));
    box.parentElement.append(panel);
    state.openPanels.add(outboxId);
    btn.setAttribute("aria-expanded", "true");
    loadExecution(outboxId, true);
  }

  async function loadExecution(outboxId, first) {
    const panels = document.querySelectorAll(`[data-testid=execution-panel][data-outbox-id="${CSS.escape(outboxId)}"]`);
    if (!panels.length) {
      state.openPanels.delete(outboxId);
      return;
    }
    // Once the panel has shown a finished execution there is nothing new to fetch.
    if (!first && panels[0].dataset.final === "true") return;
    let content;
    try {
      const res = await api(`/api/responder/messages/${encodeURIComponent(outboxId)}/execution`);
      if (res.ok) content = executionView(res.body);
      else if (res.status === 404) content = [el("p", { class: "hint", text: res.body.error || "No execution yet: the message is waiting to be picked up." })];
      else content = [el("p", { class: "error", text: res.body.error || `Could not load the execution (${res.status}).` })];
      const final = res.ok && isTerminal(normExecution(res.body).messageStatus);
      for (const p of panels) {
        p.replaceChildren(...content.map((c) => c.cloneNode(true)));
        p.dataset.final = final ? "true" : "false";
      }
    } catch {
      for (const p of panels) p.replaceChildren(el("p", { class: "error", text: "Astra is not reachable." }));
    }
  }

  const pick = (o, ...keys) => {
    for (const k of keys) if (o && o[k] !== undefined && o[k] !== null && o[k] !== "") return o[k];
    return undefined;
  };

  // normExecution reads the execution endpoint's answer,
  // {id, status, lastError, executionId, execution}, where execution is what
  // the engine returned: a Julep execution, possibly with its transitions
  // (an array or {items}) beside or inside it. Both casings are accepted.
  function normExecution(body) {
    body = body && typeof body === "object" ? body : {};
    const layers = [body];
    for (let c = body.execution; c && typeof c === "object" && layers.length < 4; c = c.execution) layers.push(c);
    const x = layers.length > 1 ? layers[layers.length - 1] : body;
    let rawT = [];
    for (const l of layers) {
      const t = l.transitions;
      if (Array.isArray(t)) rawT = t;
      else if (t && Array.isArray(t.items)) rawT = t.items;
    }
    const transitions = rawT.map((t) => {
      const cur = t.current || {};
      let step = pick(t, "step", "stepName", "step_name");
      if (step === undefined && (cur.workflow !== undefined || cur.step !== undefined)) {
        step = `${cur.workflow ?? "main"}[${cur.step ?? "?"}]`;
      }
      return { type: pick(t, "type") || "", step: step ?? "", stepIndex: cur.step,
        label: pick(t, "step_label", "stepLabel", "label") || "",
        at: pick(t, "createdAt", "created_at", "at", "time") || "" };
    });
    const timings = {};
    for (const l of layers) if (l.timings && typeof l.timings === "object") Object.assign(timings, l.timings);
    for (const [label, keys] of [["created", ["createdAt", "created_at"]], ["started", ["startedAt", "started_at"]],
      ["updated", ["updatedAt", "updated_at"]], ["finished", ["finishedAt", "finished_at", "completedAt"]]]) {
      const v = x !== body ? pick(x, ...keys) : undefined;
      if (v !== undefined && timings[label] === undefined) timings[label] = v;
    }
    return {
      id: pick(body, "executionId", "execution_id") || (x !== body ? pick(x, "id") : "") || "",
      status: (x !== body ? pick(x, "status") : undefined) || "",
      messageStatus: normStatus(pick(body, "status")),
      error: (x !== body ? pick(x, "error") : undefined) || pick(body, "lastError") || "",
      transitions,
      timings,
    };
  }

  // stepName is a step as a person reads it: its label in words, else its
  // place; the engine's internals (workflow paths, outputs) are for operators.
  function stepName(t) {
    if (t.type === "init") return "Started";
    if (t.label) {
      const s = String(t.label).replace(/[_-]+/g, " ").trim();
      return s.charAt(0).toUpperCase() + s.slice(1);
    }
    if (t.type === "finish") return "Finished";
    return Number.isInteger(t.stepIndex) ? `Step ${t.stepIndex + 1}` : "Step";
  }

  function fmtDuration(ms) {
    if (!(ms >= 0)) return "";
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  }

  function executionView(body) {
    const x = normExecution(body);
    const dl = el("dl", null,
      el("dt", { text: "Execution" }), el("dd", { "data-testid": "execution-id", text: x.id || "not started" }),
      el("dt", { text: "Status" }), el("dd", { "data-testid": "execution-status", text: x.status || (x.id ? "unknown" : x.messageStatus) }));
    if (x.error) dl.append(el("dt", { text: "Problem" }), el("dd", { text: readableError(x.error) }));
    const out = [dl];
    if (x.transitions.length) {
      const start = timeOf(x.timings.created) || timeOf(x.transitions[0].at);
      let prev = start;
      const rows = x.transitions.map((t) => {
        const at = timeOf(t.at);
        const ms = at && prev ? at - prev : NaN;
        if (at) prev = at;
        return el("tr", { "data-testid": "transition", dataset: { type: t.type } },
          el("td", { "data-testid": "step-name", text: stepName(t) }),
          el("td", { "data-testid": "step-duration", text: fmtDuration(ms) }));
      });
      out.push(el("div", { class: "table-wrap" }, el("table", null,
        el("caption", { class: "sr-only", text: "Steps" }),
        el("thead", null, el("tr", null, el("th", { scope: "col", text: "Step" }), el("th", { scope: "col", text: "Took" }))),
        el("tbody", null, ...rows))));
    } else {
      out.push(el("p", { class: "hint", text: "No steps yet." }));
    }
    if (x.id) {
      // Shown to operators only (console.js marks the page): the console's view of it.
      out.push(el("p", { class: "operator-only" },
        el("a", { href: `#console/${encodeURIComponent(x.id)}`, "data-testid": "open-console", text: "Open in console" })));
    }
    return out;
  }

  // ---------- composer ----------

  function updateComposer() {
    const v = $("composer").value;
    const n = chars(v.trim());
    const over = n > MAX_CHARS;
    $("counter").textContent = `${n} / ${MAX_CHARS}`;
    $("counter").classList.toggle("over", over);
    $("composer").setAttribute("aria-invalid", over ? "true" : "false");
    $("send").disabled = state.sending || n === 0 || over;
    const err = $("composer-error");
    if (over) {
      showError(err, `Messages can be at most ${MAX_CHARS} characters.`);
      err.dataset.kind = "limit";
    } else if (err.dataset.kind === "limit") {
      showError(err, "");
      err.dataset.kind = "";
    }
  }

  $("composer").addEventListener("input", updateComposer);
  $("composer").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  $("composer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send();
  });

  async function send() {
    const content = $("composer").value.trim();
    const n = chars(content);
    if (state.sending || n === 0 || n > MAX_CHARS) return;
    if (await postMessage(content)) $("composer").value = "";
    updateComposer();
    $("composer").focus();
  }

  // postMessage sends content (with metadata, e.g. {retryOf}) and reports
  // whether it was accepted; a failure is said under the composer.
  async function postMessage(content, metadata) {
    if (state.sending) return false;
    state.sending = true;
    updateComposer();
    try {
      const body = metadata ? { content, metadata } : { content };
      const res = await api("/api/responder/messages", { method: "POST", body: JSON.stringify(body) });
      if (res.status === 401) {
        await showSignIn("Your session has ended. Please sign in again.");
        return false;
      }
      if (!res.ok) {
        showError($("composer-error"), res.body.error || `Sending failed (${res.status}).`);
        $("composer-error").dataset.kind = "send";
        return false;
      }
      const row = res.body.message || res.body;
      if (row && row.id) {
        state.localSent.add(row.id);
        // The socket may have brought this row, and newer states, already.
        if (!state.outbox.has(row.id)) state.outbox.set(row.id, {
          id: row.id, content: row.content || content, createdAt: row.createdAt || new Date().toISOString(),
          status: normStatus(row.status), retryOf: metadata && metadata.retryOf,
        });
      }
      showError($("composer-error"), "");
      render();
      scrollToEnd();
      poll();
      return true;
    } catch {
      showError($("composer-error"), "Astra is not reachable; your message was not sent.");
      return false;
    } finally {
      state.sending = false;
      updateComposer();
    }
  }

  // Escape closes the execution panel the focus is in, else the last opened.
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || ev.defaultPrevented) return;
    const panels = [...document.querySelectorAll("[data-testid=execution-panel]")];
    if (!panels.length) return;
    const panel = panels.find((p) => p.contains(document.activeElement)) ||
      panels.find((p) => p.parentElement.contains(document.activeElement)) || panels[panels.length - 1];
    const btn = panel.parentElement.querySelector("[data-testid=show-execution]");
    ev.preventDefault();
    if (btn) {
      btn.click();
      btn.focus();
    } else {
      panel.remove();
    }
  });

  boot();
})();
