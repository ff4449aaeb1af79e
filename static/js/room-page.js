// A room's page entry (templates/room.html): the sidebar, and one WebSocket per open
// room, its frames routed to the part of the page each is for: the conversation, the
// members panel, the messages being sent. Removed from the room (close code 4403), the
// page says so and goes back to the browse page.

import { $ } from "./dom.js";
import { openRoomSocket } from "./connection.js";
import { readingPlace } from "./scroll.js";
import { startConversation } from "./conversation.js";
import { memberPanel } from "./members.js";
import { makeConfirm } from "./confirm.js";
import { startSidebar } from "./sidebar.js";
import { createOutbox } from "./outbox.js";
import { startComposer } from "./composer.js";
import { startMessageActions } from "./message-actions.js";
import { startTyping } from "./typing.js";
import { startReadMarker } from "./read-marker.js";

const root = document.querySelector("main.room[data-slug]");
const me = root.dataset.user;
const connState = $("conn-state");
const connText = $("conn-text");
const input = $("body");
const slug = root.dataset.slug;
// How long the removal notice shows before the page goes back to the browse page.
const REMOVED_MS = 4000;
let leaving = false; // the user is leaving by their own choice

startSidebar({ current: slug });

// The socket is made first and connected last: the parts it feeds are made in between.
const socket = openRoomSocket({
  slug,
  since: () => conversation.lastSeq(),
  rev: () => conversation.lastRev(),
  show(kind, text) {
    connState.className = "conn-state " + kind;
    connText.textContent = text;
  },
  onFrame: handle,
  onClose() {
    outbox.lost();
    actions.lost();
    typing.reset();
    marker.lost();
    conversation.forgetAsks();
    members.offline();
  },
  onLeave: () => outbox.lost(),
  onRemoved: removed,
});
const place = readingPlace({ scroller: $("scroller"), list: $("messages"), jump: $("jump") });
const outbox = createOutbox({
  list: $("outbox"), me, send: socket.send, isJoined: socket.isJoined,
});
const conversation = startConversation({
  viewer: { me, moderates: root.dataset.moderates === "true" },
  list: $("messages"),
  place,
  olderButton: $("load-older"),
  historyStart: $("history-start"),
  announcer: $("announcer"),
  send: socket.send,
  isJoined: socket.isJoined,
  onShown: outbox.settle,
  readSeq: root.dataset.readSeq === undefined ? undefined : Number(root.dataset.readSeq),
});
const marker = startReadMarker({
  conversation, place, send: socket.send, isJoined: socket.isJoined,
  initial: Number(root.dataset.readSeq || 0),
});
const ask = makeConfirm({
  dialog: $("confirm"), title: $("confirm-title"), text: $("confirm-text"), ok: $("confirm-ok"),
  fallback: $("members-title"),
});
const members = memberPanel({
  slug,
  me,
  kind: root.dataset.kind,
  moderates: root.dataset.moderates === "true",
  owns: root.dataset.owns === "true",
  list: $("members"),
  count: $("member-count"),
  status: $("members-status"),
  error: $("members-error"),
  heading: $("members-title"),
  addForm: $("add-member"),
  addInput: $("add-member-name"),
  leaveButton: $("leave-room"),
  ask,
  onLeft: (yes) => { leaving = yes; },
});
const composer = startComposer({
  form: $("send-form"), input, button: $("send"), status: $("send-status"), outbox,
  toBottom: place.toBottom,
  replyBar: $("replying"), replyText: $("replying-text"), replyCancel: $("replying-cancel"),
});
const actions = startMessageActions({
  list: $("messages"), me, send: socket.send, isJoined: socket.isJoined, conversation, composer,
  ask, picker: $("emoji-picker"),
});
composer.onEditLast(actions.editLast);
const typing = startTyping({
  input, send: socket.send, isJoined: socket.isJoined, line: $("typing"),
});
composer.onSent(typing.sent);

$("jump").addEventListener("click", () => {
  place.toBottom();
  input.focus();
});

// The phone layout's Members button shows and hides the members panel.
const membersButton = $("members-button");
membersButton.addEventListener("click", () => {
  const open = membersButton.getAttribute("aria-expanded") !== "true";
  membersButton.setAttribute("aria-expanded", String(open));
  $("members-pane").classList.toggle("open", open);
});

// No longer a member (left elsewhere, removed or banned): nothing more can be sent here;
// the notice (an alert) says so, and after a moment the page goes to the browse page.
function removed() {
  if (leaving) return;
  input.disabled = true;
  $("send").disabled = true;
  for (const control of document.querySelectorAll("main.room button, main.room input")) {
    control.disabled = true;
  }
  $("removed").hidden = false;
  setTimeout(() => { location.href = "/"; }, REMOVED_MS);
}

function handle(frame) {
  switch (frame.type) {
    case "joined":
      members.reset(frame.members || []);
      outbox.pump(); // what was waiting (or never acked) goes again, with its client_id
      break;
    case "history":
      conversation.history(frame);
      marker.maybe();
      break;
    case "message":
      conversation.message(frame);
      marker.maybe();
      break;
    case "read":
      marker.read(frame);
      break;
    case "message_updated":
      conversation.updated(frame);
      break;
    case "updates":
      conversation.updates(frame);
      break;
    case "ack":
      if (!actions.acked(frame)) outbox.acked(frame, conversation.has);
      break;
    case "resync":
      conversation.resync();
      break;
    case "typing":
      typing.show(frame.users);
      break;
    case "member_joined":
      members.add(frame.user);
      break;
    case "member_left":
      members.remove(frame.user);
      break;
    case "error":
      if (frame.client_id) {
        if (!actions.refused(frame)) composer.refused(frame);
      } else if (frame.code === "rate_limited") {
        // A history request over the per-connection budget: ask again later.
        setTimeout(conversation.askAgain, frame.retry_after_ms || 1000);
      } else {
        composer.showError(frame.message || frame.code);
      }
      break;
    default:
      break;
  }
}

socket.connect();
