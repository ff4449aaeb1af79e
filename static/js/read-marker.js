// The read marker (CONTRACT §11): it moves when the newest messages have been on screen
// while the tab is visible — not merely because the page is open in a background tab or
// scrolled up — at most once a second, and never back.

const EVERY_MS = 1000;

// `conversation`: conversation.js (lastSeq). `place`: scroll.js (nearBottom).
// `send(frame)`, `isJoined()`: the room's socket. `initial`: the marker when the page
// was made.
export function startReadMarker({ conversation, place, send, isJoined, initial }) {
  let confirmed = initial || 0; // what the server said the marker is
  let asked = confirmed; // the highest `read` sent on this socket
  let timer = 0;

  function maybe() {
    if (timer || !isJoined() || document.visibilityState !== "visible" || !place.nearBottom()) return;
    const last = conversation.lastSeq();
    if (last <= asked) return;
    asked = last;
    send({ type: "read", seq: last });
    timer = setTimeout(() => {
      timer = 0;
      maybe();
    }, EVERY_MS);
  }

  document.addEventListener("visibilitychange", maybe);
  window.addEventListener("focus", maybe);
  place.onScroll(maybe);

  return {
    maybe,
    // The server's `read`: where the marker is now.
    read(frame) {
      if (frame.seq > confirmed) confirmed = frame.seq;
    },
    // The socket closed: what was not confirmed goes again on the next.
    lost() {
      asked = confirmed;
    },
  };
}
