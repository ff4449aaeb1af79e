// natter's pages: the room list, kept fresh, and the room client (one WebSocket per open
// room: history, scroll-back, presence, sending with a client_id, resume with ?since=).
// User text is only ever inserted with textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // What a person typed (a name, a body): its direction is its own, so a right-to-left
  // override inside it cannot reorder the text around it.
  function userText(tag, className, text) {
    const node = el(tag, className, text);
    node.dir = "auto";
    return node;
  }

  // Times are shown in the reader's time zone and locale: the time of day for today,
  // the date too for older ones, everything in the tooltip.
  const timeOfDay = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
  const dayAndTime = new Intl.DateTimeFormat([], {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
  const full = new Intl.DateTimeFormat([], { dateStyle: "full", timeStyle: "long" });

  function setTime(node, iso) {
    const date = new Date(iso);
    if (isNaN(date)) return;
    node.dateTime = iso;
    const today = date.toDateString() === new Date().toDateString();
    node.textContent = (today ? timeOfDay : dayAndTime).format(date);
    node.title = full.format(date);
  }

  const roomList = $("room-list");
  if (roomList) startRoomList(roomList);
  const room = document.querySelector("main.room[data-slug]");
  if (room) startRoom(room);

  // ---- The room list: online counts and last activity, polled from /api/rooms ----

  function startRoomList(table) {
    const REFRESH_MS = 10000;
    const tbody = table.tBodies[0];
    const empty = $("rooms-empty");
    let timer = 0;
    let busy = false;

    for (const time of table.querySelectorAll("time")) setTime(time, time.dateTime);

    function fillRow(tr, room) {
      const [nameCell, onlineCell, lastCell] = tr.cells;
      const link = nameCell.firstElementChild;
      link.href = "/rooms/" + encodeURIComponent(room.slug);
      link.textContent = room.name;
      onlineCell.textContent = String(room.online);
      onlineCell.classList.toggle("live", room.online > 0);
      if (room.last_message_at) {
        const time = lastCell.querySelector("time") || el("time");
        setTime(time, room.last_message_at);
        lastCell.replaceChildren(time);
      } else {
        lastCell.textContent = "—";
      }
    }

    function newRow(slug) {
      const tr = el("tr");
      tr.dataset.slug = slug;
      const nameCell = el("td");
      const link = el("a");
      link.dir = "auto";
      nameCell.append(link);
      tr.append(nameCell, el("td", "num online"), el("td"));
      return tr;
    }

    function render(rooms) {
      // Rows are updated in place so that a focused link keeps its focus.
      const focused = table.contains(document.activeElement) ? document.activeElement : null;
      const rows = new Map([...tbody.rows].map((tr) => [tr.dataset.slug, tr]));
      rooms.forEach((room, i) => {
        const tr = rows.get(room.slug) || newRow(room.slug);
        rows.delete(room.slug);
        fillRow(tr, room);
        if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
      });
      for (const tr of rows.values()) tr.remove();
      table.hidden = rooms.length === 0;
      empty.hidden = rooms.length > 0;
      if (focused && focused.isConnected && document.activeElement !== focused) focused.focus();
    }

    async function refresh() {
      clearTimeout(timer);
      if (busy) return;
      busy = true;
      try {
        const response = await fetch("/api/rooms", { cache: "no-store" });
        if (response.status === 401) {
          location.href = "/login?next=/";
          return;
        }
        if (response.ok) {
          const list = await response.json();
          render(list.rooms || []);
          $("rooms-truncated").hidden = !list.truncated;
        }
      } catch (_) {
        // Offline for now: the next round tries again.
      } finally {
        busy = false;
      }
      if (!document.hidden) timer = setTimeout(refresh, REFRESH_MS);
    }

    // No polling in a background tab; a returning reader gets fresh numbers at once.
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) clearTimeout(timer);
      else refresh();
    });
    timer = setTimeout(refresh, REFRESH_MS);

    // The create-or-join form: the server's rules, checked before the round trip.
    const form = $("create-room");
    const input = $("room-name");
    const error = $("room-name-error");
    function problem(name) {
      const chars = [...name.trim()].length;
      if (chars === 0) return "Enter a name for the room.";
      if (chars > 64) return "A room name has at most 64 characters.";
      if (/\p{Cc}/u.test(name.trim())) return "A room name cannot contain control characters.";
      return "";
    }
    function showProblem(text) {
      error.textContent = text;
      error.hidden = !text;
      if (text) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
    form.addEventListener("submit", (event) => {
      const text = problem(input.value);
      if (!text) return;
      event.preventDefault();
      showProblem(text);
      input.focus();
    });
    input.addEventListener("input", () => {
      if (input.hasAttribute("aria-invalid") && !problem(input.value)) showProblem("");
    });
  }

  // ---- The room ----

  function startRoom(root) {
    const slug = root.dataset.slug;
    const me = root.dataset.user;
    const scroller = $("scroller");
    const list = $("messages");
    const outbox = $("outbox");
    const members = $("members");
    const memberCount = $("member-count");
    const connState = $("conn-state");
    const connText = $("conn-text");
    const status = $("send-status");
    const form = $("send-form");
    const input = $("body");
    const sendButton = $("send");
    const olderButton = $("load-older");
    const historyStart = $("history-start");
    const jump = $("jump");
    const announcer = $("announcer");

    const PAGE = 50; // older messages asked for at a time
    const GROUP_MS = 5 * 60 * 1000; // one person's messages this close together form a group

    let socket = null;
    let joined = false; // the current socket has received `joined`
    let failures = 0; // connections in a row that ended or failed, for the backoff
    let reconnectTimer = 0;
    let reconnectTicker = 0;
    let pingTimer = 0;
    let countdownTimer = 0;

    const shown = new Set(); // the seq of every stored message on the page
    let lastSeq = 0; // every message from the oldest shown up to this one is on the page
    let oldestSeq = 0; // the oldest on the page; 0 while there is none
    let askedAfter = -1; // a `history after` request is out for this seq
    let olderAsked = 0; // a `history before` request is out for this seq; 0: none

    // Sends not yet acked, oldest first. Only the first is on the wire at a time, so a
    // refusal (rate limit) holds the rest back instead of reordering them.
    const queue = [];
    let inFlight = null;
    let heldUntil = 0; // no send before this time (rate limit, or the store was unavailable)
    const online = new Set();

    function send(frame) {
      if (!socket || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(frame));
      return true;
    }

    function setConnection(kind, text) {
      connState.className = "conn-state " + kind;
      connText.textContent = text;
    }

    // The line under the send box: a countdown, or why a message was refused.
    function showStatus(parts, kind) {
      const nodes = [].concat(parts || []);
      status.hidden = nodes.length === 0;
      status.dataset.kind = kind || "";
      status.replaceChildren(...nodes);
    }

    function announce(text) {
      announcer.append(el("p", "", text));
      while (announcer.childElementCount > 3) announcer.firstElementChild.remove();
    }

    // ---- messages ----

    function nearBottom() {
      return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
    }

    function scrollToBottom() {
      scroller.scrollTop = scroller.scrollHeight;
      jump.hidden = true;
    }

    function firstVisible() {
      const top = scroller.getBoundingClientRect().top;
      for (const li of list.children) {
        if (li.getBoundingClientRect().bottom > top) return li;
      }
      return null;
    }

    function messageItem(m) {
      const li = el("li", "message" + (m.user === me ? " mine" : ""));
      li.dataset.seq = m.seq;
      li.dataset.user = m.user;
      li.dataset.at = Date.parse(m.sent_at) || 0;
      const who = userText("bdi", "who", m.user);
      if (m.user === me) who.append(el("span", "visually-hidden", " (you)"));
      const when = el("time");
      setTime(when, m.sent_at);
      li.append(who, " ", when, userText("div", "body", m.body));
      return li;
    }

    // Consecutive messages (no seq between them) from one person, close in time, are
    // shown as one group: the name only on the first.
    function regroup(li) {
      const prev = li.previousElementSibling;
      li.classList.toggle(
        "cont",
        !!prev &&
          prev.dataset.user === li.dataset.user &&
          Number(prev.dataset.seq) === Number(li.dataset.seq) - 1 &&
          li.dataset.at - prev.dataset.at < GROUP_MS,
      );
    }

    function insert(m) {
      if (shown.has(m.seq)) return false;
      const li = messageItem(m);
      // Messages arrive almost always in order: look for the place from the end.
      let before = null;
      for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
        if (Number(node.dataset.seq) < m.seq) break;
        before = node;
      }
      list.insertBefore(li, before);
      shown.add(m.seq);
      regroup(li);
      if (li.nextElementSibling) regroup(li.nextElementSibling);
      if (!oldestSeq || m.seq < oldestSeq) oldestSeq = m.seq;
      // This page's own copy, waiting for the message since its ack came.
      for (const item of [...outbox.children]) if (Number(item.dataset.seq) === m.seq) item.remove();
      return true;
    }

    // Adds messages without moving what the reader is looking at: at the bottom the view
    // follows new messages; otherwise the first visible message stays where it is
    // (older messages loading above it included).
    function addMessages(messages, live) {
      const follow = nearBottom();
      const anchor = follow ? null : firstVisible();
      const anchorTop = anchor && anchor.getBoundingClientRect().top;
      let added = 0;
      for (const m of messages) {
        if (!insert(m)) continue;
        added++;
        if (live && m.user !== me) announce(m.user + ": " + m.body);
      }
      if (!added) return;
      if (!lastSeq) lastSeq = oldestSeq - 1;
      while (shown.has(lastSeq + 1)) lastSeq++;
      updateEdge();
      if (follow) scrollToBottom();
      else if (anchor) scroller.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
      if (!follow && live) jump.hidden = false;
    }

    // A hole between lastSeq and the newest message shown (or a resync) is filled by
    // asking for what follows lastSeq, once per lastSeq.
    function fillGap(force) {
      const newest = list.lastElementChild ? Number(list.lastElementChild.dataset.seq) : 0;
      if (!joined || askedAfter === lastSeq || !(force || newest > lastSeq)) return;
      askedAfter = lastSeq;
      send({ type: "history", after: lastSeq, limit: 100 });
    }

    function loadOlder() {
      if (!joined || olderAsked || oldestSeq <= 1) return;
      olderAsked = oldestSeq;
      send({ type: "history", before: oldestSeq, limit: PAGE });
    }

    // Older messages load when the reader nears the top, and until the view is full.
    function maybeLoadOlder() {
      if (scroller.scrollTop < 80) loadOlder();
    }

    function updateEdge() {
      olderButton.hidden = oldestSeq <= 1;
      historyStart.hidden = oldestSeq > 1;
    }

    // ---- members ----

    function renderMembers() {
      const names = [...online].sort();
      members.replaceChildren(
        ...names.map((name) => {
          const li = userText("li", name === me ? "me" : "", name);
          li.dataset.user = name;
          if (name === me) li.append(el("span", "visually-hidden", " (you)"));
          return li;
        }),
      );
      memberCount.textContent = "(" + names.length + ")";
    }

    // ---- sending ----

    function newClientId() {
      const bytes = crypto.getRandomValues(new Uint8Array(12));
      return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    }

    function pendingItem(body) {
      const li = el("li", "message mine pending");
      const who = userText("bdi", "who", me);
      who.append(el("span", "visually-hidden", " (you)"));
      li.append(who, " ", el("span", "state", "sending…"), userText("div", "body", body));
      return li;
    }

    // Puts the oldest waiting message on the wire, when nothing else is and we may.
    function pump() {
      if (inFlight || !joined || !queue.length || Date.now() < heldUntil) return;
      inFlight = queue[0];
      send({ type: "send", body: inFlight.body, client_id: inFlight.clientId });
    }

    function submit() {
      const body = input.value.trim();
      if (!body || Date.now() < heldUntil) return;
      const entry = { clientId: newClientId(), body, item: pendingItem(body) };
      queue.push(entry);
      outbox.append(entry.item);
      scrollToBottom();
      input.value = "";
      if (status.dataset.kind === "error") showStatus("");
      pump();
    }

    function take(clientId) {
      const i = queue.findIndex((entry) => entry.clientId === clientId);
      if (i < 0) return null;
      const [entry] = queue.splice(i, 1);
      if (entry === inFlight) inFlight = null;
      return entry;
    }

    function acked(frame) {
      const entry = take(frame.client_id);
      if (entry) {
        // The message frame may come before or after its ack; the pending copy stays
        // until the stored message is on the page.
        if (shown.has(frame.seq)) entry.item.remove();
        else entry.item.dataset.seq = frame.seq;
      }
      pump();
    }

    // Holds sending for `ms`, counting down in the status line; the waiting message goes
    // by itself when the time is up.
    function hold(ms, rateLimited) {
      heldUntil = Date.now() + ms;
      clearInterval(countdownTimer);
      sendButton.disabled = rateLimited;
      const seconds = el("span", "", "");
      seconds.setAttribute("aria-live", "off"); // announce the wait once, not every tick
      if (rateLimited) {
        showStatus(["Slow down: you can send again in ", seconds, " s."], "rate-limited");
      } else {
        showStatus(["Your message could not be stored yet; trying again in ", seconds, " s."], "info");
      }
      const tick = () => {
        const left = heldUntil - Date.now();
        if (left > 0) {
          seconds.textContent = String(Math.ceil(left / 1000));
          return;
        }
        clearInterval(countdownTimer);
        heldUntil = 0;
        const hadFocus = document.activeElement === sendButton || document.activeElement === document.body;
        sendButton.disabled = false;
        if (hadFocus) input.focus();
        showStatus("");
        pump();
      };
      tick();
      countdownTimer = setInterval(tick, 200);
    }

    function refused(frame) {
      const entry = queue.find((e) => e.clientId === frame.client_id);
      if (!entry) return;
      if (entry === inFlight) inFlight = null;
      if (frame.code === "rate_limited") {
        hold(frame.retry_after_ms || 1000, true);
      } else if (frame.code === "unavailable") {
        hold(2000, false); // not stored: the same client_id goes again
      } else {
        // Refused for good (too long, …): say why and give the text back to fix.
        take(frame.client_id);
        entry.item.remove();
        showStatus(frame.message || frame.code, "error");
        if (!input.value.trim()) input.value = entry.body;
        pump();
      }
    }

    // ---- the connection ----

    function handle(frame) {
      switch (frame.type) {
        case "joined":
          joined = true;
          failures = 0;
          setConnection("ok", "Connected");
          online.clear();
          for (const name of frame.members || []) online.add(name);
          renderMembers();
          pump(); // what was waiting (or never acked) goes again, with its client_id
          break;
        case "history": {
          const messages = frame.messages || [];
          const before = lastSeq;
          addMessages(messages, false);
          if (lastSeq > before) askedAfter = -1;
          if (olderAsked && (oldestSeq < olderAsked || !messages.length)) olderAsked = 0;
          const extendsTail = messages.length && messages[messages.length - 1].seq >= lastSeq;
          fillGap(Boolean(frame.truncated && extendsTail));
          if (joined) updateEdge(); // an empty room has its beginning on show
          maybeLoadOlder();
          break;
        }
        case "message":
          addMessages([frame], true);
          fillGap(false);
          break;
        case "ack":
          acked(frame);
          break;
        case "resync":
          askedAfter = -1;
          fillGap(true);
          break;
        case "member_joined":
          online.add(frame.user);
          renderMembers();
          break;
        case "member_left":
          online.delete(frame.user);
          renderMembers();
          break;
        case "error":
          if (frame.client_id) {
            refused(frame);
          } else if (frame.code === "rate_limited") {
            // A history request over the per-connection budget: ask again later.
            setTimeout(() => {
              askedAfter = -1;
              olderAsked = 0;
              fillGap(false);
              maybeLoadOlder();
            }, frame.retry_after_ms || 1000);
          } else {
            showStatus(frame.message || frame.code, "error");
          }
          break;
        default:
          break;
      }
    }

    function connect() {
      clearTimeout(reconnectTimer);
      clearInterval(reconnectTicker);
      if (socket) return;
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      let url = scheme + location.host + "/ws/rooms/" + encodeURIComponent(slug);
      if (lastSeq > 0) url += "?since=" + lastSeq; // resume: everything after what we have
      setConnection("connecting", failures ? "Reconnecting…" : "Connecting…");
      const ws = new WebSocket(url);
      socket = ws;
      ws.addEventListener("open", () => {
        pingTimer = setInterval(() => send({ type: "ping" }), 25000);
      });
      ws.addEventListener("message", (event) => {
        if (socket !== ws) return;
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (_) {
          return;
        }
        handle(frame);
      });
      ws.addEventListener("close", (event) => {
        if (socket === ws) closed(event);
      });
    }

    function closed(event) {
      const wasJoined = joined;
      socket = null;
      joined = false;
      inFlight = null;
      askedAfter = -1;
      olderAsked = 0;
      clearInterval(pingTimer);
      if (event.code === 1008) {
        setConnection("bad", "Signed out");
        location.href = "/login?next=" + encodeURIComponent(location.pathname);
        return;
      }
      failures++;
      // A refused upgrade looks like a network error; a session that ended is a 401.
      if (!wasJoined && failures >= 2) {
        fetch("/api/me", { cache: "no-store" })
          .then((r) => {
            if (r.status === 401) location.href = "/login?next=" + encodeURIComponent(location.pathname);
          })
          .catch(() => {});
      }
      // Exponential backoff with jitter, so a restarted server is not hit by everyone at once.
      const delay = Math.min(10000, 500 * 2 ** Math.min(failures - 1, 5)) * (0.5 + Math.random() / 2);
      const at = Date.now() + delay;
      const tick = () => {
        const left = Math.ceil((at - Date.now()) / 1000);
        setConnection("bad", left > 1 ? "Offline: reconnecting in " + left + " s" : "Offline: reconnecting…");
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
      inFlight = null;
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

    // ---- the page's controls ----

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });

    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });

    olderButton.addEventListener("click", loadOlder);
    jump.addEventListener("click", () => {
      scrollToBottom();
      input.focus();
    });
    scroller.addEventListener("scroll", () => {
      maybeLoadOlder();
      if (nearBottom()) jump.hidden = true;
    }, { passive: true });

    connect();
  }
})();
