// The members panel (templates/room.html): everyone in the room, with their role and
// whether they are online. The roster comes from GET /api/rooms/{slug}/members, asked
// again when someone arrives or leaves and after one's own changes; who is online is kept
// live by the socket's joined, member_joined and member_left frames. Owners and
// moderators (the page says so in its data attributes; the server checks every call
// anyway) get add, make moderator or member (owners only), remove and ban; removing and
// banning are confirmed first. Changes are announced in a polite live region.

import { el } from "./dom.js";

const ROLE_ORDER = { owner: 0, moderator: 1, member: 2 };

// `ask(question)`: confirm.js. `onLeft()`: the user left the room themselves.
export function memberPanel({
  slug, me, kind, moderates, owns, list, count, status, error, heading, addForm, addInput,
  leaveButton, ask, onLeft,
}) {
  const base = "/api/rooms/" + encodeURIComponent(slug);
  let roster = null; // Map username → role, once fetched
  const online = new Set();
  let live = false; // `online` comes from the socket (after `joined`)
  let timer = 0;
  let asking = null;
  let drawn = ""; // what the list shows, to leave it alone when nothing changed

  function announce(text) {
    // Emptied first, so the same sentence twice is announced twice.
    status.textContent = "";
    setTimeout(() => { status.textContent = text; }, 50);
  }

  function showError(text) {
    error.textContent = text || "";
    error.hidden = !text;
  }

  // What an API call answered: null when it worked, else the reason to show.
  async function call(method, path, body) {
    const init = { method, cache: "no-store" };
    if (body !== undefined) {
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    try {
      const response = await fetch(base + path, init);
      if (response.ok) return null;
      try {
        const answer = await response.json();
        return answer.error.message || answer.error.code;
      } catch (_) {
        return "That did not work (" + response.status + ").";
      }
    } catch (_) {
      return "The server could not be reached; try again.";
    }
  }

  function button(text, label, action, name) {
    const b = el("button", "small secondary", text);
    b.type = "button";
    b.setAttribute("aria-label", label);
    b.dataset.action = action;
    b.dataset.user = name;
    return b;
  }

  // The controls the viewer may use on `name`'s row (the server refuses anything else).
  function controls(name, role) {
    if (!moderates || name === me || role === "owner") return [];
    const found = [];
    if (owns) {
      found.push(role === "moderator"
        ? button("Make member", "Make " + name + " a member, not a moderator", "demote", name)
        : button("Make moderator", "Make " + name + " a moderator", "promote", name));
    }
    // A moderator cannot remove or ban another moderator.
    if (owns || role === "member") {
      found.push(button("Remove", "Remove " + name + " from the room", "remove", name));
      found.push(button("Ban", "Ban " + name + " from the room", "ban", name));
    }
    return found;
  }

  function render() {
    const people = new Map(roster || []);
    for (const name of online) if (!people.has(name)) people.set(name, "member");
    const names = [...people.keys()].sort((a, b) => {
      const byRole = ROLE_ORDER[people.get(a)] - ROLE_ORDER[people.get(b)];
      if (byRole) return byRole;
      return a < b ? -1 : a > b ? 1 : 0;
    });
    const signature = JSON.stringify([live, names.map((n) => [n, people.get(n), online.has(n)])]);
    if (signature === drawn) return;
    drawn = signature;
    // The focused control keeps the focus when the list is drawn again.
    const active = document.activeElement;
    const focused = list.contains(active) ? [active.dataset.user, active.dataset.action] : null;
    list.replaceChildren(...names.map((name) => {
      const role = people.get(name);
      const here = online.has(name);
      const li = el("li", (here ? "online" : "offline") + (name === me ? " me" : ""));
      li.dataset.user = name;
      li.dataset.role = role;
      const who = el("span", "who");
      who.append(el("bdi", "", name));
      if (name === me) who.append(el("span", "visually-hidden", " (you)"));
      li.append(who);
      if (role !== "member") li.append(" ", el("span", "role", role));
      li.append(el("span", "visually-hidden", here ? ", online" : ", offline"));
      const tools = controls(name, role);
      if (tools.length) {
        const box = el("span", "tools");
        box.append(...tools);
        li.append(box);
      }
      return li;
    }));
    const here = names.filter((name) => online.has(name)).length;
    count.textContent = "(" + names.length + (live ? ", " + here + " online" : "") + ")";
    if (focused) {
      const again = list.querySelector(
        'button[data-user="' + CSS.escape(focused[0] || "") + '"][data-action="' + CSS.escape(focused[1] || "") + '"]',
      );
      if (again) again.focus();
      else heading.focus();
    }
  }

  // The roster again, soon (frames come in bursts); changes by others are announced.
  function refresh(now) {
    clearTimeout(timer);
    timer = setTimeout(load, now ? 0 : 150);
  }

  async function load() {
    let answer;
    try {
      const response = await fetch(base + "/members", { cache: "no-store" });
      if (!response.ok) return; // removed or signed out: the socket says so
      answer = await response.json();
    } catch (_) {
      return;
    }
    const next = new Map(answer.members.map((m) => [m.username, m.role]));
    if (roster) {
      for (const name of next.keys()) {
        if (!roster.has(name) && name !== me) announce(name + " is now a member.");
      }
      for (const name of roster.keys()) {
        if (!next.has(name) && name !== me) announce(name + " is no longer a member.");
      }
    }
    roster = next;
    if (!live) {
      online.clear();
      for (const m of answer.members) if (m.online) online.add(m.username);
    }
    render();
  }

  async function act(action, name) {
    if (asking) return;
    showError("");
    let failed;
    if (action === "promote" || action === "demote") {
      const role = action === "promote" ? "moderator" : "member";
      failed = await call("PUT", "/members/" + encodeURIComponent(name), { role });
      if (!failed) announce(name + (role === "moderator" ? " is now a moderator." : " is now a member, not a moderator."));
    } else {
      const ban = action === "ban";
      asking = ask({
        heading: ban ? "Ban " + name + "?" : "Remove " + name + "?",
        body: ban
          ? name + " leaves the room now and cannot come back until unbanned."
          : name + " leaves the room now" + (kind === "private" ? " and no longer sees it." : "."),
        action: ban ? "Ban" : "Remove",
      });
      const yes = await asking;
      asking = null;
      if (!yes) return;
      const path = (ban ? "/bans/" : "/members/") + encodeURIComponent(name);
      failed = await call(ban ? "PUT" : "DELETE", path);
      if (!failed) announce(name + (ban ? " was banned." : " was removed."));
    }
    if (failed) showError(failed);
    // What was announced is not announced again by the refresh.
    if (!failed && roster && action !== "promote" && action !== "demote") roster.delete(name);
    refresh(true);
  }

  list.addEventListener("click", (event) => {
    const target = event.target.closest("button[data-action]");
    if (target) act(target.dataset.action, target.dataset.user);
  });

  if (addForm) {
    addForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = addInput.value.trim();
      if (!name) {
        showError("Enter the username of the person to add.");
        addInput.setAttribute("aria-invalid", "true");
        addInput.focus();
        return;
      }
      const failed = await call("POST", "/members", { username: name });
      if (failed) {
        showError(failed);
        addInput.setAttribute("aria-invalid", "true");
        addInput.focus();
        return;
      }
      addInput.removeAttribute("aria-invalid");
      showError("");
      addInput.value = "";
      announce(name + " was added.");
      if (roster) roster.set(name, roster.get(name) || "member");
      render();
      refresh(true);
    });
  }

  if (leaveButton) {
    leaveButton.addEventListener("click", async () => {
      const yes = await ask({
        heading: "Leave this room?",
        body: kind === "private"
          ? "You will no longer see it; someone in it must add you again."
          : "It goes from your rooms; you can join it again from Browse rooms.",
        action: "Leave",
      });
      if (!yes) return;
      onLeft(true);
      const failed = await call("DELETE", "/members/" + encodeURIComponent(me));
      if (failed) {
        onLeft(false);
        showError(failed);
      } else {
        location.href = "/";
      }
    });
  }

  return {
    // The socket's `joined`: who is online now.
    reset(names) {
      live = true;
      online.clear();
      for (const name of names) online.add(name);
      render();
      refresh(true);
    },
    add(name) {
      online.add(name);
      render();
      refresh();
    },
    remove(name) {
      online.delete(name);
      render();
      refresh();
    },
    // The socket closed: who is online is not known any more.
    offline() {
      live = false;
    },
  };
}
