// The conversation on the page: every stored message once, in seq order, however they
// arrive (live, on a resume, by scroll-back), and the history requests that fill a gap
// and load older messages. `lastSeq` is what a reconnect resumes after.

import { el } from "./dom.js";
import { formatBody } from "./format.js";
import { messageItem, regroup, replyQuote } from "./message-item.js";

const PAGE = 50; // older messages asked for at a time

// `viewer`: who reads, as message-item.js takes it. `place`: the reader's place
// (scroll.js). `send(frame)`, `isJoined()`: the room's socket. `onShown(seq)`: a stored
// message is on the page now. `readSeq`: the read marker when the page was made; the
// first message after it gets a "New messages" line, and the page opens there.
export function startConversation({
  viewer, list, place, olderButton, historyStart, announcer, send, isJoined, onShown, readSeq,
}) {
  const me = viewer.me;
  const shown = new Set(); // the seq of every stored message on the page
  let lastSeq = 0; // every message from the oldest shown up to this one is on the page
  let lastRev = 0; // the highest rev seen: a reconnect resumes the changes after it
  let askedRevAfter = -1; // an `updates` request is out for this rev
  let oldestSeq = 0; // the oldest on the page; 0 while there is none
  let askedAfter = -1; // a `history after` request is out for this seq
  let olderAsked = 0; // a `history before` request is out for this seq; 0: none
  let revealing = 0; // the seq of a message to show once older pages bring it; 0: none
  let newLineDue = readSeq !== undefined && readSeq !== null; // drawn once, on the first history

  // For screen readers; a few lines are kept so that a burst is not cut short.
  function announce(text) {
    announcer.append(el("p", "", text));
    while (announcer.childElementCount > 3) announcer.firstElementChild.remove();
  }

  // A change (CONTRACT §10) replaces the message where it is, unless the page already
  // shows that state or a later one; a message not on the page is left to history. An
  // edit the reader has open on it stays open, unless the message is gone.
  function change(m) {
    if (!shown.has(m.seq)) return;
    const old = list.querySelector('li[data-seq="' + m.seq + '"]');
    if (!old || Number(old.dataset.rev) >= m.rev) return;
    place.keep(() => {
      const li = messageItem(m, viewer);
      const editor = old.querySelector(":scope > .editor");
      const hadFocus = old.contains(document.activeElement) ? document.activeElement : null;
      if (editor && !m.deleted) {
        li.classList.add("editing");
        li.append(editor);
      }
      const newLine = old.querySelector(":scope > .new-line");
      if (newLine) {
        li.prepend(newLine);
        li.classList.add("first-unread");
      }
      old.replaceWith(li);
      if (hadFocus) refocus(li, hadFocus);
      regroup(li);
      if (li.nextElementSibling) regroup(li.nextElementSibling);
      requote(m);
      return false;
    }, false);
  }

  // The replies on the page quote a message as it is now: a change to it changes them
  // (the server's copies of those replies follow it too, CONTRACT §10 `excerpt`).
  function requote(m) {
    const quotes = list.querySelectorAll('.reply-quote[data-seq="' + m.seq + '"]');
    if (!quotes.length) return;
    const target = {
      id: m.id, seq: m.seq, user: m.user, deleted: m.deleted,
      excerpt: m.deleted ? "" : [...m.body].slice(0, 100).join(""),
    };
    for (const quote of quotes) quote.replaceWith(replyQuote(target));
  }

  // Notes a rev; one past the next expected means changes were missed: ask for them.
  function seeRev(rev, live) {
    if (!rev) return;
    if (live && lastRev && rev > lastRev + 1 && isJoined() && askedRevAfter !== lastRev) {
      askedRevAfter = lastRev;
      send({ type: "updates", after_rev: lastRev });
    }
    if (rev > lastRev) lastRev = rev;
  }

  function insert(m) {
    if (shown.has(m.seq)) return false;
    const li = messageItem(m, viewer);
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
    onShown(m.seq);
    return true;
  }

  function add(messages, live) {
    place.keep(() => {
      let added = 0;
      for (const m of messages) {
        if (!insert(m)) continue;
        added++;
        // What the page shows, not the markup it was made from (no "star star").
        if (live && m.user !== me) announce(m.user + ": " + formatBody(m.body).textContent);
      }
      if (!added) return false;
      if (!lastSeq) lastSeq = oldestSeq - 1;
      while (shown.has(lastSeq + 1)) lastSeq++;
      updateEdge();
      return true;
    }, live);
  }

  // A hole between lastSeq and the newest message shown (or a resync) is filled by
  // asking for what follows lastSeq, once per lastSeq.
  function fillGap(force) {
    const newest = list.lastElementChild ? Number(list.lastElementChild.dataset.seq) : 0;
    if (!isJoined() || askedAfter === lastSeq || !(force || newest > lastSeq)) return;
    askedAfter = lastSeq;
    send({ type: "history", after: lastSeq, limit: 100 });
  }

  function loadOlder() {
    if (!isJoined() || olderAsked || oldestSeq <= 1) return;
    olderAsked = oldestSeq;
    send({ type: "history", before: oldestSeq, limit: PAGE });
  }

  // Older messages load when the reader nears the top, and until the view is full.
  function maybeLoadOlder() {
    if (place.nearTop()) loadOlder();
  }

  function updateEdge() {
    olderButton.hidden = oldestSeq <= 1;
    historyStart.hidden = oldestSeq > 1;
  }

  // The "New messages" line above the first message after the read marker, in view.
  function drawNewLine() {
    newLineDue = false;
    const first = [...list.children].find((li) => Number(li.dataset.seq) > readSeq);
    if (!first) return;
    const line = el("div", "new-line", "New messages");
    line.setAttribute("role", "separator");
    first.prepend(line);
    first.classList.add("first-unread");
    regroup(first);
    if (first.previousElementSibling) first.scrollIntoView({ block: "start" });
  }

  // The focus was in a message that was drawn again: it goes to the same place in the new
  // one (an editor moved over keeps its own focus), else to the message's first control.
  function refocus(li, was) {
    if (li.contains(was)) {
      was.focus();
      return;
    }
    const same = was.dataset && was.dataset.action &&
      li.querySelector('[data-action="' + was.dataset.action + '"]' +
        (was.dataset.emoji ? '[data-emoji="' + CSS.escape(was.dataset.emoji) + '"]' : ""));
    const target = same || li.querySelector("button, a");
    if (target) target.focus();
  }

  // Shows the stored message `seq` (a reply's target), highlighted and focused, loading
  // older pages until it is on the page.
  function reveal(seq) {
    const li = list.querySelector('li[data-seq="' + seq + '"]');
    if (li) {
      revealing = 0;
      li.scrollIntoView({ block: "center" });
      li.classList.remove("flash");
      void li.offsetWidth; // restarts the highlight's animation
      li.classList.add("flash");
      li.tabIndex = -1;
      li.focus({ preventScroll: true });
      return;
    }
    if (seq < 1 || (oldestSeq && seq > oldestSeq)) return; // not a message of this page
    revealing = seq;
    loadOlder();
  }

  function history(frame) {
    const messages = frame.messages || [];
    for (const m of messages) seeRev(m.rev, false);
    const before = lastSeq;
    add(messages, false);
    if (lastSeq > before) askedAfter = -1;
    if (olderAsked && (oldestSeq < olderAsked || !messages.length)) olderAsked = 0;
    const extendsTail = messages.length && messages[messages.length - 1].seq >= lastSeq;
    fillGap(Boolean(frame.truncated && extendsTail));
    if (isJoined()) updateEdge(); // an empty room has its beginning on show
    if (newLineDue) drawNewLine();
    if (revealing && shown.has(revealing)) reveal(revealing);
    else if (revealing && oldestSeq > revealing && !olderAsked) loadOlder();
    maybeLoadOlder();
  }

  function message(frame) {
    seeRev(frame.rev, true);
    add([frame], true);
    fillGap(false);
  }

  function updated(frame) {
    seeRev(frame.rev, true);
    change(frame);
  }

  // The answer to `updates` (or a resume's): every change missed, each message once.
  function updates(frame) {
    for (const m of frame.messages || []) change(m);
    if (frame.rev > lastRev) lastRev = frame.rev;
    askedRevAfter = -1;
    if (frame.truncated && isJoined()) send({ type: "updates", after_rev: lastRev });
  }

  function resync() {
    askedAfter = -1;
    fillGap(true);
  }

  // The socket closed: what was asked on it will not be answered.
  function forgetAsks() {
    askedAfter = -1;
    olderAsked = 0;
    askedRevAfter = -1;
  }

  // A history request was over the connection's budget: ask again.
  function askAgain() {
    forgetAsks();
    fillGap(false);
    maybeLoadOlder();
  }

  olderButton.addEventListener("click", loadOlder);
  place.onScroll(maybeLoadOlder);

  return {
    history, message, updated, updates, resync, forgetAsks, askAgain,
    reveal,
    has: (seq) => shown.has(seq),
    lastSeq: () => lastSeq,
    lastRev: () => lastRev,
  };
}
