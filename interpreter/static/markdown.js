// A small Markdown renderer for the model's answers. The text is untrusted, so this
// never parses HTML: it builds DOM nodes and puts every piece of text in through
// text nodes. Raw HTML in the input comes out as visible text.
//
// Covers what chat answers use: paragraphs, headings, emphasis, inline code, fenced
// code, lists (nested by indentation), block quotes, tables, rules and links.

import { highlightPython } from "./highlight.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

/**
 * Render ``text`` into a DocumentFragment.
 * ``options.resolveLink(href, label)`` may map a link (such as ``sandbox:/mnt/data/x``)
 * to a safe URL plus a download name, or return null to keep the default handling.
 */
export function renderMarkdown(text, options = {}) {
  const fragment = document.createDocumentFragment();
  renderBlocks(String(text ?? "").replace(/\r\n?/g, "\n").split("\n"), fragment, options);
  return fragment;
}

function renderBlocks(lines, parent, options) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    let match = FENCE.exec(line);
    if (match) {
      const fence = match[1];
      const lang = match[2].toLowerCase();
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trimStart().startsWith(fence)) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end, while the text is still streaming)
      const pre = el("pre", "md-code");
      const code = el("code");
      const source = body.join("\n");
      if (lang === "python" || lang === "py" || lang === "") {
        code.append(highlightPython(source));
      } else {
        code.textContent = source;
      }
      pre.append(code);
      parent.append(pre);
      continue;
    }
    match = HEADING.exec(line);
    if (match) {
      // Answers sit inside a page with its own h1/h2: start their headings at h3.
      const level = Math.min(6, match[1].length + 2);
      const heading = el(`h${level}`);
      renderInline(match[2], heading, options);
      parent.append(heading);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      parent.append(el("hr"));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) {
        body.push(QUOTE.exec(lines[i])[1]);
        i += 1;
      }
      const quote = el("blockquote");
      renderBlocks(body, quote, options);
      parent.append(quote);
      continue;
    }
    if (LIST_ITEM.test(line)) {
      i = renderList(lines, i, parent, options);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1])) {
      i = renderTable(lines, i, parent, options);
      continue;
    }
    const body = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) {
      body.push(lines[i]);
      i += 1;
    }
    if (!body.length) {
      // A line that looks like a block start but is not one (e.g. a lone "|"):
      body.push(lines[i]);
      i += 1;
    }
    const paragraph = el("p");
    renderInline(body.join("\n"), paragraph, options);
    parent.append(paragraph);
  }
}

function startsBlock(lines, i) {
  const line = lines[i];
  return (
    FENCE.test(line) ||
    HEADING.test(line) ||
    RULE.test(line) ||
    QUOTE.test(line) ||
    LIST_ITEM.test(line) ||
    (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1]))
  );
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

function renderList(lines, start, parent, options) {
  const first = LIST_ITEM.exec(lines[start]);
  const baseIndent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = el(ordered ? "ol" : "ul");
  if (ordered) {
    const startNumber = parseInt(first[2], 10);
    if (startNumber !== 1) list.start = startNumber;
  }
  let i = start;
  while (i < lines.length) {
    const match = LIST_ITEM.exec(lines[i]);
    if (!match || match[1].length !== baseIndent || /\d/.test(match[2]) !== ordered) break;
    const body = [match[3]];
    i += 1;
    // The item's continuation: indented lines, blank lines followed by indented ones.
    while (i < lines.length) {
      const next = lines[i];
      if (!next.trim()) {
        if (i + 1 < lines.length && lines[i + 1].trim() && indentOf(lines[i + 1]) > baseIndent) {
          body.push("");
          i += 1;
          continue;
        }
        break;
      }
      const nested = LIST_ITEM.exec(next);
      if (nested && nested[1].length <= baseIndent) break;
      if (!nested && indentOf(next) <= baseIndent && startsBlock(lines, i)) break;
      body.push(next.slice(Math.min(indentOf(next), baseIndent + 2)));
      i += 1;
    }
    const item = el("li");
    const [text, ...rest] = splitAtFirstBlock(body);
    renderInline(text.join("\n"), item, options);
    if (rest.length) renderBlocks(rest, item, options);
    list.append(item);
    // Skip one blank line between items of a loose list.
    if (i + 1 < lines.length && !lines[i]?.trim()) {
      const after = LIST_ITEM.exec(lines[i + 1]);
      if (after && after[1].length === baseIndent) i += 1;
    }
  }
  parent.append(list);
  return i;
}

/** Leading plain lines of an item, then the rest starting at its first nested block. */
function splitAtFirstBlock(body) {
  for (let k = 1; k < body.length; k += 1) {
    if (!body[k].trim() || startsBlock(body, k)) return [body.slice(0, k), ...body.slice(k)];
  }
  return [body];
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  const cells = [];
  let current = "";
  for (let k = 0; k < row.length; k += 1) {
    if (row[k] === "\\" && row[k + 1] === "|") {
      current += "|";
      k += 1;
    } else if (row[k] === "|") {
      cells.push(current.trim());
      current = "";
    } else {
      current += row[k];
    }
  }
  cells.push(current.trim());
  return cells;
}

function renderTable(lines, start, parent, options) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((spec) => {
    if (spec.startsWith(":") && spec.endsWith(":")) return "center";
    if (spec.endsWith(":")) return "right";
    if (spec.startsWith(":")) return "left";
    return "";
  });
  const wrap = el("div", "table-scroll");
  const table = el("table");
  const thead = el("thead");
  const headRow = el("tr");
  header.forEach((cell, k) => {
    const th = el("th");
    th.scope = "col";
    if (aligns[k]) th.style.textAlign = aligns[k];
    renderInline(cell, th, options);
    headRow.append(th);
  });
  thead.append(headRow);
  table.append(thead);
  const tbody = el("tbody");
  let i = start + 2;
  while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
    const row = el("tr");
    splitRow(lines[i]).forEach((cell, k) => {
      if (k >= header.length) return;
      const td = el("td");
      if (aligns[k]) td.style.textAlign = aligns[k];
      renderInline(cell, td, options);
      row.append(td);
    });
    tbody.append(row);
    i += 1;
  }
  table.append(tbody);
  wrap.append(table);
  parent.append(wrap);
  return i;
}

// -- inline ------------------------------------------------------------------------------

// Earliest match wins; each alternative is tried in this order at the same position.
const INLINE = [
  ["escape", /\\([\\`*_{}[\]()#+\-.!|~<>])/y],
  ["code", /(`+)([\s\S]*?[^`])\1(?!`)/y],
  ["image", /!\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/y],
  ["link", /\[((?:\\.|[^\]\\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/y],
  ["autolink", /<?(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])>?/y],
  ["strong", /(\*\*|__)(?=\S)([\s\S]*?\S)\1/y],
  ["strike", /~~(?=\S)([\s\S]*?\S)~~/y],
  ["em", /(\*|_)(?=\S)([\s\S]*?\S)\1(?!\1)/y],
  ["break", / {2,}\n|\\\n/y],
];
const SPECIAL = /[\\`![<h*_~ \n]/g;

function renderInline(text, parent, options) {
  let plain = "";
  const flush = () => {
    if (plain) parent.append(document.createTextNode(plain));
    plain = "";
  };
  let pos = 0;
  while (pos < text.length) {
    SPECIAL.lastIndex = pos;
    const next = SPECIAL.exec(text);
    if (!next) {
      plain += text.slice(pos);
      break;
    }
    plain += text.slice(pos, next.index);
    pos = next.index;
    let matched = false;
    for (const [kind, pattern] of INLINE) {
      pattern.lastIndex = pos;
      const m = pattern.exec(text);
      if (!m) continue;
      if (kind === "em" && m[1] === "_" && /\w/.test(text[pos - 1] || "")) continue; // snake_case
      if (kind === "strong" && m[1] === "__" && /\w/.test(text[pos - 1] || "")) continue;
      // 2*3*4 is arithmetic, not emphasis.
      if ((kind === "em" || kind === "strong") && m[1][0] === "*" && /\d/.test(text[pos - 1] || "")) continue;
      if (kind === "autolink" && /\w/.test(text[pos - 1] || "")) continue;
      matched = true;
      flush();
      pos += m[0].length;
      switch (kind) {
        case "escape":
          plain += m[1];
          break;
        case "code": {
          const code = el("code");
          code.textContent = m[2].replace(/^ (.*) $/s, "$1");
          parent.append(code);
          break;
        }
        case "image":
          // Images from the model's text are not loaded (they could point anywhere);
          // show what they would have been as a link instead.
          parent.append(makeLink(m[2], m[1] || m[2], options));
          break;
        case "link":
          parent.append(makeLink(m[2], m[1], options));
          break;
        case "autolink":
          parent.append(makeLink(m[1], null, options));
          break;
        case "strong": {
          const strong = el("strong");
          renderInline(m[2], strong, options);
          parent.append(strong);
          break;
        }
        case "strike": {
          const del = el("del");
          renderInline(m[1], del, options);
          parent.append(del);
          break;
        }
        case "em": {
          const em = el("em");
          renderInline(m[2], em, options);
          parent.append(em);
          break;
        }
        case "break":
          parent.append(el("br"));
          break;
      }
      break;
    }
    if (!matched) {
      plain += text[pos];
      pos += 1;
    }
  }
  flush();
}

function makeLink(href, label, options) {
  const resolved = options.resolveLink?.(href, label) ?? null;
  const target = resolved?.href ?? (safeUrl(href) ? href : null);
  if (!target) {
    // Not a link we will follow: keep the words visible and the target readable.
    const span = el("span", "md-unlinked");
    if (label) renderInline(label, span, {});
    else span.textContent = href;
    if (label && href) span.title = href;
    return span;
  }
  const a = el("a");
  a.href = target;
  if (resolved?.download) {
    a.download = resolved.download;
    a.classList.add("file-link");
  } else {
    a.target = "_blank";
    a.rel = "noopener noreferrer";
  }
  if (label) renderInline(label, a, {});
  else a.textContent = href;
  return a;
}

function safeUrl(href) {
  return /^(https?:\/\/|mailto:)/i.test(href);
}

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}
