// The sidebar of every signed-in page (templates/app.html): the user's rooms, then their
// direct messages, each a link, the current one marked. Kept fresh from
// GET /api/rooms?member=true every 5 s while the tab is in view (someone may add the user
// to a room), at once when the tab comes back. On a phone-width screen it folds behind
// the header's Rooms button. Names go in as textContent only. Each room but the one on
// show carries its unread count and, apart, its mentions of the user (CONTRACT §11); the
// tab's title starts with the total unread.

import { $, el } from "./dom.js";
import { pollWhileVisible } from "./poll.js";
import { checkRoomNames } from "./room-name.js";

const REFRESH_MS = 5000;

// The other person in a DM: its name is both usernames, sorted, joined by ", ".
export function dmPartner(me, name) {
  const mine = me.toLowerCase();
  return name.split(", ").find((n) => n.toLowerCase() !== mine) || name;
}

// The same order as the server's: by name, case-insensitively, then by slug.
function byName(a, b) {
  const [x, y] = [a.label.toLowerCase(), b.label.toLowerCase()];
  if (x !== y) return x < y ? -1 : 1;
  return a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0;
}

// `current`: the slug of the room the page shows, if any.
export function startSidebar({ current } = {}) {
  const sidebar = $("sidebar");
  const me = sidebar.dataset.user || "";
  const lists = {
    rooms: { list: $("side-rooms"), empty: $("side-rooms-empty") },
    dms: { list: $("side-dms"), empty: $("side-dms-empty") },
  };
  let shown = ""; // what the lists show, to leave them alone when nothing changed
  const title = document.title;

  startMenu(sidebar, $("menu-button"));
  checkRoomNames({ form: $("new-room-form"), input: $("new-room-name"), error: $("new-room-error") });
  checkUsername($("new-message-form"), $("new-message-name"), $("new-message-error"));

  function link(entry) {
    const a = el("a");
    a.href = "/rooms/" + encodeURIComponent(entry.slug);
    a.dataset.slug = entry.slug;
    a.append(el("bdi", "", entry.label));
    if (entry.kind === "private") a.append(" ", el("span", "tag", "private"));
    if (entry.mentions) {
      const badge = el("span", "mention-badge", "@" + entry.mentions);
      badge.setAttribute("aria-label", entry.mentions + (entry.mentions === 1 ? " mention" : " mentions"));
      a.append(" ", badge);
    }
    if (entry.unread) {
      const badge = el("span", "unread-badge", String(entry.unread));
      badge.setAttribute("aria-label", entry.unread + " unread");
      a.append(" ", badge);
    }
    a.classList.toggle("has-unread", entry.unread > 0);
    if (entry.slug === current) a.setAttribute("aria-current", "page");
    const li = el("li");
    li.append(a);
    return li;
  }

  function render(rooms) {
    // The room on show is being read: its counts would only flicker.
    const entries = rooms.map((room) => ({
      slug: room.slug,
      kind: room.kind,
      label: room.kind === "dm" ? dmPartner(me, room.name) : room.name,
      unread: room.slug === current ? 0 : room.unread || 0,
      mentions: room.slug === current ? 0 : room.mentions || 0,
    }));
    const total = entries.reduce((sum, e) => sum + e.unread, 0);
    document.title = (total ? "(" + total + ") " : "") + title;
    const groups = {
      rooms: entries.filter((e) => e.kind !== "dm").sort(byName),
      dms: entries.filter((e) => e.kind === "dm").sort(byName),
    };
    const signature = JSON.stringify(groups);
    if (signature === shown) return;
    shown = signature;
    // A focused link keeps the focus when the lists are drawn again.
    const focused = sidebar.contains(document.activeElement) ? document.activeElement.dataset.slug : undefined;
    for (const [key, { list, empty }] of Object.entries(lists)) {
      list.replaceChildren(...groups[key].map(link));
      empty.hidden = groups[key].length > 0;
    }
    if (focused) {
      const again = sidebar.querySelector('a[data-slug="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }

  const refresh = pollWhileVisible(async () => {
    const response = await fetch("/api/rooms?member=true", { cache: "no-store" });
    if (response.ok) render((await response.json()).rooms || []);
  }, REFRESH_MS);
  return { refresh };
}

// The Rooms button of a phone-width screen: it opens and closes the sidebar (Escape closes
// it too, and the focus goes back to the button).
function startMenu(sidebar, button) {
  function setOpen(open) {
    sidebar.classList.toggle("open", open);
    button.setAttribute("aria-expanded", String(open));
  }
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    setOpen(open);
    if (open) sidebar.querySelector("a, summary").focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || button.getAttribute("aria-expanded") !== "true") return;
    if (document.querySelector("dialog[open]")) return;
    setOpen(false);
    button.focus();
  });
}

function checkUsername(form, input, error) {
  form.addEventListener("submit", (event) => {
    if (input.value.trim()) return;
    event.preventDefault();
    error.textContent = "Enter the username of the person to write to.";
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  });
  input.addEventListener("input", () => {
    if (!input.hasAttribute("aria-invalid")) return;
    error.hidden = true;
    input.removeAttribute("aria-invalid");
  });
}
