// How one stored message looks in the list, and which messages form a group under one
// name.

import { el, userText } from "./dom.js";
import { formatBody } from "./format.js";
import { setTime } from "./time.js";

const GROUP_MS = 5 * 60 * 1000; // one person's messages this close together form a group

// A message as it is now (CONTRACT §10): edited, deleted (a tombstone, its text gone)
// and its reactions, each chip naming who reacted for pointers and screen readers.
export function messageItem(m, me) {
  const li = el("li", "message" + (m.user === me ? " mine" : "") + (m.deleted ? " deleted" : ""));
  li.dataset.seq = m.seq;
  li.dataset.rev = m.rev || 0;
  li.dataset.user = m.user;
  li.dataset.at = Date.parse(m.sent_at) || 0;
  const who = userText("bdi", "who", m.user);
  if (m.user === me) who.append(el("span", "visually-hidden", " (you)"));
  const when = el("time");
  setTime(when, m.sent_at);
  const body = m.deleted ? el("div", "body gone", "message deleted") : messageBody(m.body);
  li.append(who, " ", when, body);
  if (m.edited_at && !m.deleted) li.append(el("span", "edited", "(edited)"));
  if (!m.deleted && m.reactions && m.reactions.length) li.append(reactionChips(m.reactions));
  return li;
}

// A message's text, formatted; the pending copy of a send uses it too, so a message
// looks the same before and after its ack.
export function messageBody(text) {
  const body = userText("div", "body");
  body.append(formatBody(text));
  return body;
}

function reactionChips(reactions) {
  const chips = el("ul", "reactions");
  for (const r of reactions) {
    const chip = el("li", "reaction", r.emoji + " " + r.count);
    const who = r.emoji + " by " + r.users.join(", ");
    chip.title = who;
    chip.setAttribute("aria-label", who);
    chips.append(chip);
  }
  return chips;
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
