// natter's room page: one WebSocket per open room, history and live messages,
// sending with client_id (safe to resend), resume after a reconnect with ?since=.
// Every piece of user text is inserted with textContent, never as HTML.
"use strict";

(function () {
  const root = document.getElementById("room");
  if (!root) return;

  const slug = root.dataset.slug;
  const me = root.dataset.user;
  const list = document.getElementById("messages");
  const members = document.getElementById("members");
  const state = document.getElementById("conn-state");
  const sendError = document.getElementById("send-error");
  const form = document.getElementById("send-form");
  const input = document.getElementById("body");
  const olderButton = document.getElementById("load-older");

  let socket = null;
  let lastSeq = 0;          // highest seq shown without a gap
  let oldestSeq = null;     // lowest seq shown, for "load older"
  let retryDelay = 500;
  let pingTimer = null;
  let countdownTimer = null;
  const shown = new Set();  // seqs on the page
  const pending = new Map(); // client_id -> body, until acked

  function setState(text, cls) {
    state.textContent = text;
    state.className = "conn-state " + (cls || "");
  }

  function showError(text) {
    sendError.textContent = text;
    sendError.hidden = !text;
  }

  function formatTime(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function messageItem(m) {
    const li = document.createElement("li");
    li.className = "message" + (m.user === me ? " mine" : "");
    li.dataset.seq = m.seq;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = m.user;
    const when = document.createElement("time");
    when.dateTime = m.sent_at;
    when.textContent = formatTime(m.sent_at);
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = m.body;
    li.append(who, when, body);
    return li;
  }

  function atBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }

  // Inserts a message in seq order; duplicates (resends, overlapping history) are ignored.
  function addMessage(m) {
    if (shown.has(m.seq)) return;
    shown.add(m.seq);
    const stick = atBottom();
    const item = messageItem(m);
    let before = null;
    for (let i = list.children.length - 1; i >= 0; i--) {
      const child = list.children[i];
      if (Number(child.dataset.seq) < m.seq) break;
      before = child;
    }
    list.insertBefore(item, before);
    if (oldestSeq === null || m.seq < oldestSeq) oldestSeq = m.seq;
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function advance(seq) {
    // A jump in seq means something was missed: ask for the gap.
    if (seq > lastSeq + 1 && lastSeq > 0) {
      send({ type: "history", after: lastSeq, limit: 100 });
      return;
    }
    if (seq > lastSeq) lastSeq = seq;
  }

  function renderMembers(names) {
    members.replaceChildren();
    for (const name of names.slice().sort()) {
      const li = document.createElement("li");
      li.textContent = name;
      li.dataset.user = name;
      members.append(li);
    }
  }

  function memberJoined(name) {
    if ([...members.children].some((li) => li.dataset.user === name)) return;
    const names = [...members.children].map((li) => li.dataset.user);
    names.push(name);
    renderMembers(names);
  }

  function memberLeft(name) {
    for (const li of [...members.children]) {
      if (li.dataset.user === name) li.remove();
    }
  }

  function startCountdown(ms) {
    clearInterval(countdownTimer);
    const until = Date.now() + ms;
    const tick = () => {
      const left = until - Date.now();
      if (left <= 0) {
        clearInterval(countdownTimer);
        showError("");
        return;
      }
      showError("Slow down: you can send again in " + Math.ceil(left / 1000) + " s.");
    };
    tick();
    countdownTimer = setInterval(tick, 250);
  }

  function handle(frame) {
    switch (frame.type) {
      case "joined":
        renderMembers(frame.members || []);
        setState("connected", "ok");
        retryDelay = 500;
        break;
      case "history": {
        const messages = frame.messages || [];
        for (const m of messages) addMessage(m);
        if (messages.length) lastSeq = Math.max(lastSeq, messages[messages.length - 1].seq);
        olderButton.hidden = oldestSeq === null || oldestSeq <= 1;
        if (frame.truncated) send({ type: "history", after: lastSeq, limit: 100 });
        break;
      }
      case "message":
        addMessage(frame);
        advance(frame.seq);
        break;
      case "ack":
        if (frame.client_id) pending.delete(frame.client_id);
        break;
      case "resync":
        send({ type: "history", after: Math.min(lastSeq, frame.after), limit: 100 });
        break;
      case "member_joined":
        memberJoined(frame.user);
        break;
      case "member_left":
        memberLeft(frame.user);
        break;
      case "error":
        if (frame.code === "rate_limited" && frame.retry_after_ms !== undefined && frame.client_id) {
          startCountdown(frame.retry_after_ms);
        } else if (frame.code === "unavailable") {
          showError("The server could not store your message; it will be sent again.");
        } else {
          showError(frame.message || frame.code);
        }
        if (frame.client_id && frame.code !== "unavailable") pending.delete(frame.client_id);
        break;
      default:
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = scheme + "//" + location.host + "/ws/rooms/" + encodeURIComponent(slug);
    if (lastSeq > 0) url += "?since=" + lastSeq;
    setState("connecting…", "");
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      clearInterval(pingTimer);
      pingTimer = setInterval(() => send({ type: "ping" }), 25000);
      // Messages sent but never acked go again; the server stores each client_id once.
      for (const [clientId, body] of pending) send({ type: "send", body, client_id: clientId });
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      handle(frame);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(pingTimer);
      socket = null;
      if (event.code === 1008) {
        setState("signed out", "bad");
        location.href = "/login?next=" + encodeURIComponent(location.pathname);
        return;
      }
      setState("reconnecting…", "bad");
      setTimeout(connect, retryDelay + Math.random() * 250);
      retryDelay = Math.min(retryDelay * 2, 10000);
    });
  }

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = input.value.trim();
    if (!body) return;
    const clientId = newClientId();
    pending.set(clientId, body);
    showError("");
    send({ type: "send", body, client_id: clientId });
    input.value = "";
    input.focus();
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  olderButton.addEventListener("click", () => {
    if (oldestSeq !== null && oldestSeq > 1) send({ type: "history", before: oldestSeq, limit: 50 });
  });

  connect();
})();
