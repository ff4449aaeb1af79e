// Times in the reader's time zone and locale: the server can only write UTC, so every
// <time> it renders, or the client adds, goes through here.

// The time of day for today, the date too for older ones, everything in the tooltip.
const timeOfDay = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const dayAndTime = new Intl.DateTimeFormat([], {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});
const full = new Intl.DateTimeFormat([], { dateStyle: "full", timeStyle: "long" });

export function setTime(node, iso) {
  const date = new Date(iso);
  if (isNaN(date)) return;
  node.dateTime = iso;
  const today = date.toDateString() === new Date().toDateString();
  node.textContent = (today ? timeOfDay : dayAndTime).format(date);
  node.title = full.format(date);
}
