// Where the reader is in the conversation: at the bottom the view follows new messages;
// anywhere else what they are reading stays where it is, and a button offers the way down.

export function readingPlace({ scroller, list, jump }) {
  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  }

  function nearTop() {
    return scroller.scrollTop < 80;
  }

  function toBottom() {
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

  // Runs `change` (which adds messages, and says whether it did) without moving what the
  // reader is looking at: the first visible message stays put, older messages loading
  // above it included. `live`: new messages, which the reader should hear of below.
  function keep(change, live) {
    const follow = nearBottom();
    const anchor = follow ? null : firstVisible();
    const anchorTop = anchor && anchor.getBoundingClientRect().top;
    if (!change()) return;
    if (follow) toBottom();
    else if (anchor) scroller.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
    if (!follow && live) jump.hidden = false;
  }

  function onScroll(listener) {
    scroller.addEventListener("scroll", () => {
      listener();
      if (nearBottom()) jump.hidden = true;
    }, { passive: true });
  }

  return { nearTop, nearBottom, toBottom, keep, onScroll };
}
