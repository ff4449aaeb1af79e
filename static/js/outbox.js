// Messages sent but not yet acked, oldest first, each shown as "sending…" until its stored
// copy is on the page. Only the first is on the wire at a time, so a refusal (rate limit)
// holds the rest back instead of reordering them; each keeps its client_id, so one sent
// again after a drop is stored once.

import { el, userText } from "./dom.js";
import { messageBody, replyQuote } from "./message-item.js";

// A frame's client_id: the server stores a send, or applies a change, once per id.
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function pendingItem(body, replyTo, me) {
  const li = el("li", "message mine pending");
  const who = userText("bdi", "who", me);
  who.append(el("span", "visually-hidden", " (you)"));
  li.append(who, " ", el("span", "state", "sending…"));
  if (replyTo) li.append(replyQuote(replyTo));
  li.append(messageBody(body));
  return li;
}

// `send(frame)`, `isJoined()`: the room's socket.
export function createOutbox({ list, me, send, isJoined }) {
  const queue = [];
  let inFlight = null;
  let heldUntil = 0; // no send before this time (rate limit, or the store was unavailable)

  // Puts the oldest waiting message on the wire, when nothing else is and we may.
  function pump() {
    if (inFlight || !isJoined() || !queue.length || Date.now() < heldUntil) return;
    inFlight = queue[0];
    const frame = { type: "send", body: inFlight.body, client_id: inFlight.clientId };
    if (inFlight.replyTo) frame.reply_to = inFlight.replyTo.id;
    send(frame);
  }

  // `replyTo`: the message answered ({id, seq, user, excerpt}), or null.
  function add(body, replyTo) {
    const entry = { clientId: newClientId(), body, replyTo, item: pendingItem(body, replyTo, me) };
    queue.push(entry);
    list.append(entry.item);
  }

  function take(clientId) {
    const i = queue.findIndex((entry) => entry.clientId === clientId);
    if (i < 0) return null;
    const [entry] = queue.splice(i, 1);
    if (entry === inFlight) inFlight = null;
    return entry;
  }

  // `isShown(seq)`: whether the stored message is on the page already.
  function acked(frame, isShown) {
    const entry = take(frame.client_id);
    if (entry) {
      // The message frame may come before or after its ack; the pending copy stays
      // until the stored message is on the page.
      if (isShown(frame.seq)) entry.item.remove();
      else entry.item.dataset.seq = frame.seq;
    }
    pump();
  }

  // A send the server refused is off the wire but still waiting; null if it is not ours.
  function refused(clientId) {
    const entry = queue.find((e) => e.clientId === clientId);
    if (!entry) return null;
    if (entry === inFlight) inFlight = null;
    return entry;
  }

  // Gives up on a message for good.
  function drop(entry) {
    take(entry.clientId);
    entry.item.remove();
  }

  // The stored message `seq` is on the page: the copy that waited for it goes.
  function settle(seq) {
    for (const item of [...list.children]) if (Number(item.dataset.seq) === seq) item.remove();
  }

  return {
    pump, add, acked, refused, drop, settle,
    // The socket went: what was on the wire goes again, with its client_id, on the next.
    lost: () => { inFlight = null; },
    holdUntil: (time) => { heldUntil = time; },
    isHeld: () => Date.now() < heldUntil,
  };
}
