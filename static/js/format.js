// How a message's text is shown: a small, predictable subset of Markdown, built as DOM
// nodes from the text (createElement, createTextNode) and never parsed as HTML, so
// nothing a person writes can become markup, run or style anything. The server keeps the
// text exactly as sent; only the page formats it. Lines end at LF, CRLF or CR.
//
// Blocks, line by line:
// - Code block: a line that is exactly ``` (three backticks, then optionally a language
//   word, which is ignored, and trailing spaces) opens a block; the next such line closes
//   it. The lines between are shown verbatim in <pre><code>, without formatting or links.
//   An unclosed block runs to the end of the message; a fence on the last line, opening
//   nothing, stays text.
// - Quote: consecutive lines starting with "> " (or exactly ">") form one <blockquote>;
//   each line loses that prefix and is formatted inline (no blocks inside).
// - Any other line is formatted inline. Line breaks are kept (the body is pre-wrap).
//
// Inline, within one line (nothing spans a line break):
// - Code: a run of backticks up to the next run of as many backticks, shown verbatim in
//   <code> (one space just inside each end is dropped when both are there, so `` `x` ``
//   shows `x`). A run with no such partner stays literal, so ``` or 4,000 backticks do.
// - Links: http:// or https:// (any case), not right after a letter or digit, up to the
//   next whitespace, less trailing . , ; : ! ? ' " * and any ")" that closes no "(" in
//   it. It becomes <a href rel="noopener noreferrer" target="_blank"> showing the text as
//   written, only if the browser parses it as an http: or https: URL; otherwise it is
//   text. No other scheme is ever a link, and nothing is fetched.
// - **strong** and *emphasis*: an opening run of one or two asterisks is followed by a
//   non-space, a closing run is preceded by one, and a closer pairs with the nearest
//   open run of the same length (runs opened between them stay literal). Anything
//   unpaired, a run of three or more, or an asterisk between spaces ("2 * 3 * 4")
//   stays literal. Strong and emphasis nest; code and links sit inside them, and
//   asterisks inside code and links are just text.
//
// Every step only moves forward (a code span's partner is looked up in a table), so the
// time is linear in the length of the text: a message of backticks or asterisks cannot
// stall the page.

const FENCE = /^```\s*[\w#+.-]*\s*$/;
const SPACE = /\s/;
const WORD = /[\p{L}\p{N}]/u;
const LINK_START = /^https?:\/\//i;
const TRAILING = new Set([".", ",", ";", ":", "!", "?", "'", '"', "*"]);

// The formatted text, to go into a message's body element.
export function formatBody(text) {
  const fragment = document.createDocumentFragment();
  for (const block of blocks(text.split(/\r\n|\n|\r/))) {
    if (block.kind === "code") {
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = block.lines.join("\n");
      pre.append(code);
      fragment.append(pre);
    } else if (block.kind === "quote") {
      const quote = document.createElement("blockquote");
      appendLines(quote, block.lines);
      fragment.append(quote);
    } else {
      appendLines(fragment, block.lines);
    }
  }
  return fragment;
}

// The lines grouped into code blocks, quotes and text. Block elements break the line
// themselves, so no line break is kept between one block and the next.
function blocks(lines) {
  const found = [];
  const add = (kind, line) => {
    const last = found[found.length - 1];
    if (last && last.kind === kind) last.lines.push(line);
    else found.push({ kind, lines: [line] });
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (FENCE.test(line) && i + 1 < lines.length) {
      const block = { kind: "code", lines: [] };
      for (i++; i < lines.length && !FENCE.test(lines[i]); i++) block.lines.push(lines[i]);
      found.push(block);
    } else if (line === ">" || line.startsWith("> ")) {
      add("quote", line.slice(2));
    } else {
      add("text", line);
    }
  }
  return found;
}

function appendLines(parent, lines) {
  lines.forEach((line, i) => {
    if (i > 0) parent.append("\n");
    appendInline(parent, line);
  });
}

function appendInline(parent, line) {
  const tokens = pairEmphasis(tokenize(line));
  const open = [parent];
  for (const token of tokens) {
    const current = open[open.length - 1];
    if (token.kind === "text") {
      current.append(token.text);
    } else if (token.kind === "code") {
      const code = document.createElement("code");
      code.textContent = token.text;
      current.append(code);
    } else if (token.kind === "link") {
      current.append(link(token.text));
    } else if (token.role === "open") {
      const node = document.createElement(token.text.length === 2 ? "strong" : "em");
      current.append(node);
      open.push(node);
    } else if (token.role === "close") {
      open.pop();
    } else {
      current.append(token.text);
    }
  }
}

// An anchor only for a URL the browser itself reads as http(s); anything else is text.
function link(text) {
  let url;
  try {
    url = new URL(text);
  } catch (_) {
    return document.createTextNode(text);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return document.createTextNode(text);
  const a = document.createElement("a");
  a.href = url.href;
  a.rel = "noopener noreferrer";
  a.target = "_blank";
  a.textContent = text;
  return a;
}

// One line as text, code spans, links and asterisk runs (`stars`, paired later).
function tokenize(line) {
  const tokens = [];
  let text = "";
  const flush = () => {
    if (text) tokens.push({ kind: "text", text });
    text = "";
  };
  const partner = backtickPartners(line);
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === "`") {
      const run = runLength(line, i, "`");
      const close = partner.get(i);
      if (close === undefined) {
        text += line.slice(i, i + run);
      } else {
        flush();
        tokens.push({ kind: "code", text: trimOneSpace(line.slice(i + run, close)) });
      }
      i = close === undefined ? i + run : close + run;
    } else if (c === "*") {
      const run = runLength(line, i, "*");
      const before = line[i - 1];
      const after = line[i + run];
      if (run > 2) {
        text += line.slice(i, i + run);
      } else {
        flush();
        tokens.push({
          kind: "stars",
          text: line.slice(i, i + run),
          canOpen: after !== undefined && !SPACE.test(after),
          canClose: before !== undefined && !SPACE.test(before),
          role: null,
        });
      }
      i += run;
    } else if ((c === "h" || c === "H") && !WORD.test(line[i - 1] || "") && LINK_START.test(line.slice(i, i + 8))) {
      // Whether it is a URL at all is for the browser to say, when the link is built.
      const end = linkEnd(line, i);
      flush();
      tokens.push({ kind: "link", text: line.slice(i, end) });
      i = end;
    } else {
      text += c;
      i++;
    }
  }
  flush();
  return tokens;
}

function runLength(line, start, char) {
  let end = start;
  while (line[end] === char) end++;
  return end - start;
}

// For each run of backticks, where the next run of the same length starts, if there is
// one: one pass from the end, remembering the last run seen of each length.
function backtickPartners(line) {
  const runs = [];
  for (let i = line.indexOf("`"); i >= 0; i = line.indexOf("`", i)) {
    const length = runLength(line, i, "`");
    runs.push([i, length]);
    i += length;
  }
  const partner = new Map();
  const nextOfLength = new Map();
  for (let r = runs.length - 1; r >= 0; r--) {
    const [start, length] = runs[r];
    if (nextOfLength.has(length)) partner.set(start, nextOfLength.get(length));
    nextOfLength.set(length, start);
  }
  return partner;
}

// `` `x` `` shows `x`: the spaces only keep the backticks apart.
function trimOneSpace(code) {
  return code.length > 2 && code.startsWith(" ") && code.endsWith(" ") && code.trim()
    ? code.slice(1, -1)
    : code;
}

// Where a link starting at `start` ends: at whitespace, less trailing punctuation that
// belongs to the sentence (a ")" only when the link opened no "(" for it).
function linkEnd(line, start) {
  let end = start;
  let opened = 0;
  let closed = 0;
  while (end < line.length && !SPACE.test(line[end])) {
    if (line[end] === "(") opened++;
    else if (line[end] === ")") closed++;
    end++;
  }
  for (;;) {
    const last = line[end - 1];
    if (TRAILING.has(last)) {
      end--;
    } else if (last === ")" && closed > opened) {
      closed--;
      end--;
    } else {
      return end;
    }
  }
}

// Pairs asterisk runs: a closer takes the nearest open run of its length, and the runs
// opened after that one stay literal. How many runs of each length are open is counted,
// so a closer with no partner never searches, and each run leaves the stack once.
function pairEmphasis(tokens) {
  const stack = [];
  const openOfLength = [0, 0, 0];
  tokens.forEach((token) => {
    if (token.kind !== "stars") return;
    const length = token.text.length;
    if (token.canClose && openOfLength[length] > 0) {
      for (;;) {
        const opener = stack.pop();
        openOfLength[opener.text.length]--;
        if (opener.text.length === length) {
          opener.role = "open";
          token.role = "close";
          break;
        }
      }
    } else if (token.canOpen) {
      stack.push(token);
      openOfLength[length]++;
    }
  });
  // Runs left without a role show as the asterisks they are. Pairs nest properly (a
  // closer drops every run opened after its partner), so building the nodes is one pass.
  return tokens;
}
