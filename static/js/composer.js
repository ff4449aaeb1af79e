// The send box: Enter sends; the line under it says why a message waits or was refused;
// a hold (rate limit, store unavailable) counts down there, then what waits goes by itself.
// A reply shows what it answers above the box until it is sent or cancelled (Escape).
// Up arrow in the empty box edits your last message (`editLast`, message-actions.js).

import { el, userText } from "./dom.js";

// `outbox`: outbox.js. `toBottom()`: scrolls to the newest message. `replyBar`: where a
// reply's target is shown, with `replyText` and the `replyCancel` button in it.
export function startComposer({
  form, input, button, status, outbox, toBottom, replyBar, replyText, replyCancel,
}) {
  let countdownTimer = 0;
  let replying = null; // the message the next send answers: {id, seq, user, excerpt}
  let editLast = () => false;
  let onSent = () => {};

  function replyTo(target) {
    replying = target;
    replyBar.hidden = !target;
    if (target) {
      replyText.replaceChildren(
        "Replying to ", userText("bdi", "who", target.user), ": ",
        userText("span", "excerpt", target.excerpt),
      );
      input.focus();
    } else {
      replyText.replaceChildren();
    }
  }

  // The line under the send box: a countdown, or why a message was refused.
  function showStatus(parts, kind) {
    const nodes = [].concat(parts || []);
    status.hidden = nodes.length === 0;
    status.dataset.kind = kind || "";
    status.replaceChildren(...nodes);
  }

  function submit() {
    const body = input.value.trim();
    if (!body || outbox.isHeld()) return;
    outbox.add(body, replying);
    onSent();
    replyTo(null);
    toBottom();
    input.value = "";
    if (status.dataset.kind === "error") showStatus("");
    outbox.pump();
  }

  // Holds sending for `ms`, counting down in the status line; the waiting message goes
  // by itself when the time is up.
  function hold(ms, rateLimited) {
    const heldUntil = Date.now() + ms;
    outbox.holdUntil(heldUntil);
    clearInterval(countdownTimer);
    button.disabled = rateLimited;
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
      outbox.holdUntil(0);
      const hadFocus = document.activeElement === button || document.activeElement === document.body;
      button.disabled = false;
      if (hadFocus) input.focus();
      showStatus("");
      outbox.pump();
    };
    tick();
    countdownTimer = setInterval(tick, 200);
  }

  // An `error` frame about one of our sends.
  function refused(frame) {
    const entry = outbox.refused(frame.client_id);
    if (!entry) return;
    if (frame.code === "rate_limited") {
      hold(frame.retry_after_ms || 1000, true);
    } else if (frame.code === "unavailable") {
      hold(2000, false); // not stored: the same client_id goes again
    } else {
      // Refused for good (too long, …): say why and give the text back to fix.
      outbox.drop(entry);
      showStatus(frame.message || frame.code, "error");
      if (!input.value.trim()) {
        input.value = entry.body;
        if (entry.replyTo && frame.code !== "invalid_reply") replyTo(entry.replyTo);
      }
      outbox.pump();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape" && replying) {
      event.preventDefault();
      replyTo(null);
    } else if (
      event.key === "ArrowUp" && !input.value && !event.shiftKey && !event.altKey &&
      !event.ctrlKey && !event.metaKey && editLast()
    ) {
      event.preventDefault();
    }
  });

  replyCancel.addEventListener("click", () => {
    replyTo(null);
    input.focus();
  });

  return {
    refused,
    replyTo,
    showError: (text) => showStatus(text, "error"),
    focus: () => input.focus(),
    // `edit()`: opens the editor on the user's last message; false when there is none.
    onEditLast: (edit) => { editLast = edit; },
    // `sent()`: a message was put on its way (typing.js: the server takes us off the list).
    onSent: (sent) => { onSent = sent; },
  };
}
