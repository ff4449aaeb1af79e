// A room's page entry (templates/room.html): one WebSocket per open room, its frames
// routed to the part of the page each is for: the conversation, who is online, the
// messages being sent.

import { $ } from "./dom.js";
import { openRoomSocket } from "./connection.js";
import { readingPlace } from "./scroll.js";
import { startConversation } from "./conversation.js";
import { memberList } from "./members.js";
import { createOutbox } from "./outbox.js";
import { startComposer } from "./composer.js";

const root = document.querySelector("main.room[data-slug]");
const me = root.dataset.user;
const connState = $("conn-state");
const connText = $("conn-text");
const input = $("body");

// The socket is made first and connected last: the parts it feeds are made in between.
const socket = openRoomSocket({
  slug: root.dataset.slug,
  since: () => conversation.lastSeq(),
  show(kind, text) {
    connState.className = "conn-state " + kind;
    connText.textContent = text;
  },
  onFrame: handle,
  onClose() {
    outbox.lost();
    conversation.forgetAsks();
  },
  onLeave: () => outbox.lost(),
});
const place = readingPlace({ scroller: $("scroller"), list: $("messages"), jump: $("jump") });
const outbox = createOutbox({
  list: $("outbox"), me, send: socket.send, isJoined: socket.isJoined,
});
const conversation = startConversation({
  me,
  list: $("messages"),
  place,
  olderButton: $("load-older"),
  historyStart: $("history-start"),
  announcer: $("announcer"),
  send: socket.send,
  isJoined: socket.isJoined,
  onShown: outbox.settle,
});
const members = memberList({ list: $("members"), count: $("member-count"), me });
const composer = startComposer({
  form: $("send-form"), input, button: $("send"), status: $("send-status"), outbox,
  toBottom: place.toBottom,
});

$("jump").addEventListener("click", () => {
  place.toBottom();
  input.focus();
});

function handle(frame) {
  switch (frame.type) {
    case "joined":
      members.reset(frame.members || []);
      outbox.pump(); // what was waiting (or never acked) goes again, with its client_id
      break;
    case "history":
      conversation.history(frame);
      break;
    case "message":
      conversation.message(frame);
      break;
    case "ack":
      outbox.acked(frame, conversation.has);
      break;
    case "resync":
      conversation.resync();
      break;
    case "member_joined":
      members.add(frame.user);
      break;
    case "member_left":
      members.remove(frame.user);
      break;
    case "error":
      if (frame.client_id) {
        composer.refused(frame);
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
