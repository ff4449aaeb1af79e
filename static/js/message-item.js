// How one stored message looks in the list, and which messages form a group under one
// name.

import { el, userText } from "./dom.js";
import { formatBody } from "./format.js";
import { setTime } from "./time.js";

const GROUP_MS = 5 * 60 * 1000; // one person's messages this close together form a group

// A message as it is now (CONTRACT §10): edited, deleted (a tombstone, its text gone),
// the message it replies to, and its reactions, each chip naming who reacted for pointers
// and screen readers; one that mentions the viewer is highlighted (CONTRACT §11). `viewer`: who looks (`me`) and whether they may delete others'
// messages (`moderates`); it decides the actions offered (message-actions.js acts on them).
export function messageItem(m, viewer) {
  const mine = m.user === viewer.me;
  const mentionsMe = !mine && (m.mentions || []).includes(viewer.me);
  const li = el(
    "li",
    "message" + (mine ? " mine" : "") + (m.deleted ? " deleted" : "") + (mentionsMe ? " mentions-me" : ""),
  );
  li.id = "message-" + m.id;
  li.dataset.id = m.id;
  li.dataset.seq = m.seq;
  li.dataset.rev = m.rev || 0;
  li.dataset.user = m.user;
  li.dataset.at = Date.parse(m.sent_at) || 0;
  if (!m.deleted) li.dataset.body = m.body; // as stored: what an edit starts from
  const who = userText("bdi", "who", m.user);
  if (mine) who.append(el("span", "visually-hidden", " (you)"));
  const when = el("time");
  setTime(when, m.sent_at);
  li.append(who, " ", when);
  if (m.reply_to && !m.deleted) li.append(replyQuote(m.reply_to));
  li.append(m.deleted ? el("div", "body gone", "message deleted") : messageBody(m.body));
  if (m.edited_at && !m.deleted) li.append(el("span", "edited", "(edited)"));
  if (!m.deleted && m.reactions && m.reactions.length) {
    li.append(reactionChips(m.reactions, viewer.me));
  }
  if (!m.deleted) li.append(actions(mine, mine || viewer.moderates));
  return li;
}

// A message's text, formatted; the pending copy of a send uses it too, so a message
// looks the same before and after its ack.
export function messageBody(text) {
  const body = userText("div", "body");
  body.append(formatBody(text));
  return body;
}

// The quote of the message replied to; following it shows that message (`data-seq`).
export function replyQuote(target) {
  const quote = el("a", "reply-quote");
  quote.href = "#message-" + target.id;
  quote.dataset.seq = target.seq;
  quote.append(el("span", "visually-hidden", "In reply to "), userText("bdi", "who", target.user), ": ");
  if (target.deleted) quote.append(el("span", "gone", "message deleted"));
  else quote.append(userText("span", "excerpt", target.excerpt));
  return quote;
}

// A chip per emoji: pressed when the viewer is among those who reacted; pressing it adds
// or takes back the viewer's reaction.
function reactionChips(reactions, me) {
  const chips = el("ul", "reactions");
  for (const r of reactions) {
    const chip = el("button", "reaction", r.emoji + " " + r.count);
    chip.type = "button";
    chip.dataset.action = "toggle-reaction";
    chip.dataset.emoji = r.emoji;
    chip.setAttribute("aria-pressed", String(r.users.includes(me)));
    const who = r.emoji + " by " + r.users.join(", ");
    chip.title = who;
    chip.setAttribute("aria-label", who);
    const item = el("li");
    item.append(chip);
    chips.append(item);
  }
  return chips;
}

// What can be done to a message, shown on hover and focus (style.css).
function actions(canEdit, canDelete) {
  const bar = el("div", "actions");
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Message actions");
  const add = (action, text) => {
    const button = el("button", "small secondary", text);
    button.type = "button";
    button.dataset.action = action;
    bar.append(button);
  };
  add("react", "React");
  add("reply", "Reply");
  if (canEdit) add("edit", "Edit");
  if (canDelete) add("delete", "Delete");
  return bar;
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
      li.dataset.at - prev.dataset.at < GROUP_MS &&
      !li.querySelector(":scope > .reply-quote") && // a reply stands on its own, quote first
      !li.classList.contains("first-unread"), // so does the first of the new messages
  );
}
