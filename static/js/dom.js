// Building nodes for every page. User text only ever goes in as textContent, never as
// HTML, so nothing a person wrote can become markup.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// What a person typed (a name, a body): its direction is its own, so a right-to-left
// override inside it cannot reorder the text around it.
export function userText(tag, className, text) {
  const node = el(tag, className, text);
  node.dir = "auto";
  return node;
}
