// The create-or-join form: the server's rules for a room name, checked before the round
// trip. The server checks again; this only saves a page load.

function problem(name) {
  const chars = [...name.trim()].length;
  if (chars === 0) return "Enter a name for the room.";
  if (chars > 64) return "A room name has at most 64 characters.";
  if (/\p{Cc}/u.test(name.trim())) return "A room name cannot contain control characters.";
  return "";
}

export function checkRoomNames({ form, input, error }) {
  function showProblem(text) {
    error.textContent = text;
    error.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
  form.addEventListener("submit", (event) => {
    const text = problem(input.value);
    if (!text) return;
    event.preventDefault();
    showProblem(text);
    input.focus();
  });
  input.addEventListener("input", () => {
    if (input.hasAttribute("aria-invalid") && !problem(input.value)) showProblem("");
  });
}
