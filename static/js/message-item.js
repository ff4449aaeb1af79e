// How one stored message looks in the list, and which messages form a group under one
// name.

import { el, userText } from "./dom.js";
import { setTime } from "./time.js";

const GROUP_MS = 5 * 60 * 1000; // one person's messages this close together form a group

export function messageItem(m, me) {
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

// Consecutive messages (no seq between them) from one person, close in time, are shown
// as one group: the name only on the first.
export function regroup(li) {
  const prev = li.previousElementSibling;
  li.classList.toggle(
    "cont",
    !!prev &&
      prev.dataset.user === li.dataset.user &&
      Number(prev.dataset.seq) === Number(li.dataset.seq) - 1 &&
      li.dataset.at - prev.dataset.at < GROUP_MS,
  );
}
