// Typing (CONTRACT §11): the message box says `typing` while there is text in it, again
// every few seconds so the name stays on the others' lists, and `active:false` when it
// is emptied (an accepted send takes the name off by itself); the line under the box says
// who else is typing.

const AGAIN_MS = 3000; // well within the server's 6 s, so a typist never blinks off

// `send(frame)`, `isJoined()`: the room's socket. `line`: where the names are shown.
export function startTyping({ input, send, isJoined, line }) {
  let saidAt = 0; // when `typing` last went out; 0: we are not on the list

  function update() {
    if (!isJoined()) return;
    const now = Date.now();
    if (input.value.trim()) {
      if (now - saidAt >= AGAIN_MS) {
        send({ type: "typing" });
        saidAt = now;
      }
    } else if (saidAt) {
      send({ type: "typing", active: false });
      saidAt = 0;
    }
  }

  function show(users) {
    const names = users || [];
    let text = "";
    if (names.length === 1) text = names[0] + " is typing…";
    else if (names.length === 2) text = names[0] + " and " + names[1] + " are typing…";
    else if (names.length === 3) text = names[0] + ", " + names[1] + " and " + names[2] + " are typing…";
    else if (names.length > 3) text = "Several people are typing…";
    line.textContent = text;
  }

  input.addEventListener("input", update);

  return {
    show,
    // A send went: the server takes us off the list when it accepts it.
    sent: () => { saidAt = 0; },
    // The socket closed: the list we had is gone with it, and so are we from it.
    reset: () => { saidAt = 0; show([]); },
  };
}
