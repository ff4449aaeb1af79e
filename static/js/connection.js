// A room's WebSocket: one connection at a time, opened again after a drop with backoff
// and resumed from the last message the page has (?since=), closed when the page is left
// so the others see us go. Of the protocol it knows only `joined` (the connection is up)
// and `ping`; every frame goes on to `onFrame`. Closed with 4403 (the user left, or was
// removed or banned: CONTRACT §9), it stops for good and calls `onRemoved`.

const PING_MS = 25000; // so that proxies see traffic

// `since()`: the seq to resume after (0: none yet); `rev()`: the rev whose later changes
// come with it (0: none). `show(kind, text)`: the connection's
// state for the reader. `onClose()`: the socket closed, and what was asked on it will not
// be answered. `onLeave()`: the page was left (it may come back from the back/forward
// cache). `onRemoved()`: the user is no longer a member; nothing reconnects.
export function openRoomSocket({ slug, since, rev, show, onFrame, onClose, onLeave, onRemoved }) {
  let socket = null;
  let removed = false; // closed with 4403: never again
  let joined = false; // the current socket has received `joined`
  let failures = 0; // connections in a row that ended or failed, for the backoff
  let reconnectTimer = 0;
  let reconnectTicker = 0;
  let pingTimer = 0;

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    clearInterval(reconnectTicker);
    if (socket || removed) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let url = scheme + location.host + "/ws/rooms/" + encodeURIComponent(slug);
    const after = since();
    if (after > 0) {
      url += "?since=" + after; // resume: everything after what we have
      // …and every change to what we have since the last rev seen (CONTRACT §10).
      if (rev() > 0) url += "&rev=" + rev();
    }
    show("connecting", failures ? "Reconnecting…" : "Connecting…");
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener("open", () => {
      pingTimer = setInterval(() => send({ type: "ping" }), PING_MS);
    });
    ws.addEventListener("message", (event) => {
      if (socket !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (frame.type === "joined") {
        joined = true;
        failures = 0;
        show("ok", "Connected");
      }
      onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (socket === ws) closed(event);
    });
  }

  function signIn() {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
  }

  function gone() {
    if (removed) return;
    removed = true;
    clearTimeout(reconnectTimer);
    clearInterval(reconnectTicker);
    show("bad", "Not a member");
    onRemoved();
  }

  function closed(event) {
    const wasJoined = joined;
    socket = null;
    joined = false;
    onClose();
    clearInterval(pingTimer);
    if (event.code === 1008) {
      show("bad", "Signed out");
      signIn();
      return;
    }
    if (event.code === 4403) {
      gone();
      return;
    }
    failures++;
    // A refused upgrade looks like a network error; a session that ended is a 401.
    if (!wasJoined && failures >= 2) {
      fetch("/api/me", { cache: "no-store" })
        .then((r) => {
          if (r.status === 401) signIn();
        })
        .catch(() => {});
      // A member removed while offline never saw the 4403: the room now refuses them.
      fetch("/api/rooms/" + encodeURIComponent(slug) + "/members", { cache: "no-store" })
        .then((r) => {
          if (r.status === 403 || r.status === 404) gone();
        })
        .catch(() => {});
    }
    // Exponential backoff with jitter, so a restarted server is not hit by everyone at once.
    const delay = Math.min(10000, 500 * 2 ** Math.min(failures - 1, 5)) * (0.5 + Math.random() / 2);
    const at = Date.now() + delay;
    const tick = () => {
      const left = Math.ceil((at - Date.now()) / 1000);
      show("bad", left > 1 ? "Offline: reconnecting in " + left + " s" : "Offline: reconnecting…");
    };
    tick();
    reconnectTicker = setInterval(tick, 1000);
    reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (!socket) connect();
  }

  // Leaving the page closes the socket at once, so the others see us go (a page kept in
  // the back/forward cache would otherwise stay "online"); coming back reconnects.
  window.addEventListener("pagehide", () => {
    const ws = socket;
    socket = null;
    joined = false;
    onLeave();
    clearInterval(pingTimer);
    clearTimeout(reconnectTimer);
    clearInterval(reconnectTicker);
    if (ws) ws.close(1000, "page left");
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) connect();
  });
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) reconnectNow();
  });

  return { connect, send, isJoined: () => joined };
}
