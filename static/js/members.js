// Who is online in the room: the member list the server sends on joining, kept up to date
// by its member_joined and member_left frames.

import { el, userText } from "./dom.js";

export function memberList({ list, count, me }) {
  const online = new Set();

  function render() {
    const names = [...online].sort();
    list.replaceChildren(
      ...names.map((name) => {
        const li = userText("li", name === me ? "me" : "", name);
        li.dataset.user = name;
        if (name === me) li.append(el("span", "visually-hidden", " (you)"));
        return li;
      }),
    );
    count.textContent = "(" + names.length + ")";
  }

  return {
    reset(names) {
      online.clear();
      for (const name of names) online.add(name);
      render();
    },
    add(name) {
      online.add(name);
      render();
    },
    remove(name) {
      online.delete(name);
      render();
    },
  };
}
