// The browse page's table of public rooms: online counts and last activity, polled from
// /api/rooms while the tab is in view (the user's private rooms and DMs are in the
// sidebar, not here).

import { el } from "./dom.js";
import { pollWhileVisible } from "./poll.js";
import { setTime } from "./time.js";

const REFRESH_MS = 10000;

export function startRoomList({ table, empty, truncated }) {
  const tbody = table.tBodies[0];

  for (const time of table.querySelectorAll("time")) setTime(time, time.dateTime);

  function fillRow(tr, room) {
    const [nameCell, onlineCell, lastCell] = tr.cells;
    const link = nameCell.firstElementChild;
    link.href = "/rooms/" + encodeURIComponent(room.slug);
    link.textContent = room.name;
    onlineCell.textContent = String(room.online);
    onlineCell.classList.toggle("live", room.online > 0);
    if (room.last_message_at) {
      const time = lastCell.querySelector("time") || el("time");
      setTime(time, room.last_message_at);
      lastCell.replaceChildren(time);
    } else {
      lastCell.textContent = "—";
    }
  }

  function newRow(slug) {
    const tr = el("tr");
    tr.dataset.slug = slug;
    const nameCell = el("td");
    const link = el("a");
    link.dir = "auto";
    nameCell.append(link);
    tr.append(nameCell, el("td", "num online"), el("td"));
    return tr;
  }

  function render(rooms) {
    // Rows are updated in place so that a focused link keeps its focus.
    const focused = table.contains(document.activeElement) ? document.activeElement : null;
    const rows = new Map([...tbody.rows].map((tr) => [tr.dataset.slug, tr]));
    rooms.forEach((room, i) => {
      const tr = rows.get(room.slug) || newRow(room.slug);
      rows.delete(room.slug);
      fillRow(tr, room);
      if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
    });
    for (const tr of rows.values()) tr.remove();
    table.hidden = rooms.length === 0;
    empty.hidden = rooms.length > 0;
    if (focused && focused.isConnected && document.activeElement !== focused) focused.focus();
  }

  pollWhileVisible(async () => {
    const response = await fetch("/api/rooms?kind=public", { cache: "no-store" });
    if (response.status === 401) {
      location.href = "/login?next=/";
      return;
    }
    if (response.ok) {
      const list = await response.json();
      render(list.rooms || []);
      truncated.hidden = !list.truncated;
    }
  }, REFRESH_MS);
}
