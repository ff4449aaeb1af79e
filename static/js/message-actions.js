// Changing messages from the page (CONTRACT §10): each message's actions (message-item.js
// draws them; shown on hover, focus or a tap) and its reaction chips. Edit opens an editor in
// place (Enter saves, Escape cancels; Up arrow in an empty message box edits your last
// message); delete asks first; react opens natter's own emoji picker; reply hands the
// message to the composer; a reply's quote shows the message it answers. Every change
// goes over the room's socket with a client_id: its ack closes what waited for it, its
// error is said where the change was asked.

import { el } from "./dom.js";
import { newClientId } from "./outbox.js";

// The picker's emoji, with the names screen readers say. Any other emoji still shows as
// a chip when someone adds it through the API.
const EMOJI = [
  ["👍", "thumbs up"], ["👎", "thumbs down"], ["😄", "smile"], ["😂", "laughing"],
  ["🎉", "party"], ["❤️", "heart"], ["🔥", "fire"], ["🚀", "rocket"],
  ["👀", "eyes"], ["🙏", "thank you"], ["👏", "clapping"], ["💯", "hundred"],
  ["🤔", "thinking"], ["😮", "surprised"], ["😢", "sad"], ["✅", "done"],
];

// `list`: the conversation's <ol>. `send(frame)`, `isJoined()`: the room's socket.
// `conversation`: conversation.js (reveal). `composer`: composer.js (replies, the status
// line). `ask(question)`: confirm.js. `picker`: the page's emoji picker element.
export function startMessageActions({ list, me, send, isJoined, conversation, composer, ask, picker }) {
  const waiting = new Map(); // client_id → the change it asked, until its ack or error
  let pickerFor = null; // the React button the picker is open for

  // Sends a change of the message in `li`; false (and says why) when it cannot go now.
  function change(li, frame, onDone, onError) {
    if (!isJoined()) {
      composer.showError("Not connected: try again once the room is back.");
      return false;
    }
    const clientId = newClientId();
    waiting.set(clientId, { seq: Number(li.dataset.seq), onDone, onError });
    send({ ...frame, message_id: Number(li.dataset.id), client_id: clientId });
    return true;
  }

  // ---- Editing in place ----

  function openEditor(li) {
    if (!li || li.classList.contains("deleted")) return false;
    const open = li.querySelector(":scope > .editor textarea");
    if (open) {
      open.focus();
      return true;
    }
    const form = el("form", "editor");
    const label = el("label", "visually-hidden", "Edit your message");
    const box = el("textarea");
    box.id = "edit-" + li.dataset.id;
    label.htmlFor = box.id;
    box.maxLength = 4000;
    box.rows = 2;
    box.dir = "auto";
    box.value = bodyText(li);
    const status = el("p", "editor-status error");
    status.setAttribute("role", "alert");
    status.hidden = true;
    const save = el("button", "small", "Save");
    save.type = "submit";
    const cancel = el("button", "small secondary", "Cancel");
    cancel.type = "button";
    const row = el("div", "row");
    row.append(save, cancel, el("span", "hint", "Enter saves · Escape cancels"));
    form.append(label, box, status, row);
    li.classList.add("editing");
    li.append(form);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);

    const close = () => {
      const current = form.closest("li.message") || li;
      form.remove();
      current.classList.remove("editing");
      const edit = current.querySelector('[data-action="edit"]');
      if (edit) edit.focus();
      else composer.focus();
    };
    const submit = () => {
      const current = form.closest("li.message") || li;
      const body = box.value.trim();
      if (body === bodyText(current).trim()) {
        close(); // nothing changed: nothing to store
        return;
      }
      if (!body) {
        showEditorError("A message cannot be empty; delete it instead.");
        return;
      }
      save.disabled = true;
      const sent = change(current, { type: "edit", body }, close, (text) => {
        save.disabled = false;
        showEditorError(text);
      });
      if (!sent) save.disabled = false;
    };
    function showEditorError(text) {
      status.textContent = text;
      status.hidden = false;
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    cancel.addEventListener("click", close);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    return true;
  }

  // The text as stored, which the editor starts from (the page shows it formatted).
  function bodyText(li) {
    return li.dataset.body || "";
  }

  // Up arrow in an empty message box: your newest message that is still there.
  function editLast() {
    const mine = list.querySelectorAll(":scope > li.mine:not(.deleted)");
    return mine.length ? openEditor(mine[mine.length - 1]) : false;
  }

  // ---- Deleting ----

  async function remove(li) {
    const yours = li.dataset.user === me;
    const yes = await ask({
      heading: "Delete this message?",
      body: yours
        ? "It is deleted for everyone. This cannot be undone."
        : "This message by " + li.dataset.user + " is deleted for everyone. This cannot be undone.",
      action: "Delete",
    });
    if (yes && li.isConnected) change(li, { type: "delete" }, null, composer.showError);
  }

  // ---- Reactions ----

  function buildPicker() {
    picker.replaceChildren();
    for (const [emoji, name] of EMOJI) {
      const b = el("button", "emoji", emoji);
      b.type = "button";
      b.dataset.emoji = emoji;
      b.setAttribute("aria-label", name);
      b.title = name;
      picker.append(b);
    }
    picker.addEventListener("click", (event) => {
      const b = event.target.closest("button[data-emoji]");
      if (!b || !pickerFor) return;
      const li = pickerFor.closest("li.message");
      closePicker(true);
      if (li) react(li, b.dataset.emoji, true);
    });
    picker.addEventListener("keydown", (event) => {
      const buttons = [...picker.querySelectorAll("button")];
      const at = buttons.indexOf(document.activeElement);
      const columns = 8;
      const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns };
      if (event.key === "Escape") {
        event.preventDefault();
        closePicker(true);
      } else if (event.key in moves && at >= 0) {
        event.preventDefault();
        const next = buttons[(at + moves[event.key] + buttons.length) % buttons.length];
        next.focus();
      } else if (event.key === "Tab") {
        closePicker(false);
      }
    });
    document.addEventListener("pointerdown", (event) => {
      if (pickerFor && !picker.contains(event.target) && event.target !== pickerFor) closePicker(false);
    });
  }

  function openPicker(button) {
    if (pickerFor === button) {
      closePicker(true);
      return;
    }
    pickerFor = button;
    button.setAttribute("aria-expanded", "true");
    picker.hidden = false;
    // Below the button, inside the window.
    const at = button.getBoundingClientRect();
    const width = picker.offsetWidth;
    const height = picker.offsetHeight;
    const left = Math.max(8, Math.min(at.left, window.innerWidth - width - 8));
    const below = at.bottom + 4 + height < window.innerHeight;
    picker.style.left = left + "px";
    picker.style.top = (below ? at.bottom + 4 : Math.max(8, at.top - 4 - height)) + "px";
    picker.querySelector("button").focus();
  }

  // `refocus`: the focus goes back to the React button (closed from the keyboard or by a
  // choice), not when the reader clicked elsewhere.
  function closePicker(refocus) {
    const button = pickerFor;
    pickerFor = null;
    picker.hidden = true;
    if (!button) return;
    button.setAttribute("aria-expanded", "false");
    if (refocus) {
      // The message may have been drawn again meanwhile: its new React button.
      const li = button.isConnected ? null : list.querySelector('li[data-seq="' + button.dataset.seq + '"]');
      const target = li ? li.querySelector('[data-action="react"]') : button;
      if (target && target.isConnected) target.focus();
    }
  }

  function react(li, emoji, add) {
    change(li, { type: add ? "react" : "unreact", emoji }, null, composer.showError);
  }

  // ---- One listener for every message ----

  list.addEventListener("click", (event) => {
    const quote = event.target.closest(".reply-quote");
    if (quote) {
      event.preventDefault();
      conversation.reveal(Number(quote.dataset.seq));
      return;
    }
    const button = event.target.closest("button[data-action]");
    if (!button) {
      // A tap on a message (a touch screen has no hover) shows its actions.
      const tapped = event.target.closest("li.message");
      if (!tapped || event.target.closest("a, textarea, form")) return;
      for (const other of list.querySelectorAll(":scope > li.selected")) {
        if (other !== tapped) other.classList.remove("selected");
      }
      tapped.classList.toggle("selected");
      return;
    }
    const li = button.closest("li.message");
    if (!li || !list.contains(li)) return;
    switch (button.dataset.action) {
      case "edit":
        openEditor(li);
        break;
      case "delete":
        remove(li);
        break;
      case "react":
        button.dataset.seq = li.dataset.seq;
        openPicker(button);
        break;
      case "toggle-reaction":
        react(li, button.dataset.emoji, button.getAttribute("aria-pressed") !== "true");
        break;
      case "reply":
        composer.replyTo({
          id: Number(li.dataset.id),
          seq: Number(li.dataset.seq),
          user: li.dataset.user,
          excerpt: [...bodyText(li)].slice(0, 100).join(""),
        });
        break;
      default:
        break;
    }
  });

  buildPicker();

  return {
    editLast,
    // An ack for one of our changes: true when it was one (else it is the outbox's).
    acked(frame) {
      const asked = waiting.get(frame.client_id);
      if (!asked) return false;
      waiting.delete(frame.client_id);
      if (asked.onDone) asked.onDone();
      return true;
    },
    // An error about one of our changes: said where it was asked; true when it was one.
    refused(frame) {
      const asked = waiting.get(frame.client_id);
      if (!asked) return false;
      waiting.delete(frame.client_id);
      let text = frame.message || frame.code;
      if (frame.code === "rate_limited") {
        const seconds = Math.ceil((frame.retry_after_ms || 1000) / 1000);
        text = "Slow down: you can change messages again in " + seconds + " s.";
      }
      if (asked.onError) asked.onError(text);
      return true;
    },
    // The socket closed: no ack will come for what was sent on it.
    lost() {
      for (const asked of waiting.values()) {
        if (asked.onError) asked.onError("The connection dropped: if your change does not show, try again.");
      }
      waiting.clear();
    },
  };
}
