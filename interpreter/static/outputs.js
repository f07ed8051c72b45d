// How a cell's outputs look: kernel outputs from /execute (streams, rich display data,
// errors) and the model's tool outputs from the Responses API (logs, images). Text
// outputs can be copied; images enlarged and downloaded.
//
// Kernel HTML (a pandas table, say) is untrusted: it is parsed inert by DOMParser and
// rebuilt from an allow-list of tags with no attributes that can carry a URL, a style
// or a script, so only its structure and text survive.

import { renderAnsi, stripAnsi } from "./highlight.js";
import { renderMarkdown } from "./markdown.js";
import { button, copyText, el } from "./ui.js";

/** The output area of one cell; keeps its outputs as data so they can be saved. */
export class OutputArea {
  constructor(element, onChange = null) {
    this.element = element;
    this.onChange = onChange; // called when outputs come or go
    this.outputs = [];
    this.lastStream = null; // {name, output, pre} of the block the next stream text joins
  }

  clear() {
    this.outputs = [];
    this.lastStream = null;
    this.element.replaceChildren();
    this.onChange?.();
  }

  setAll(outputs) {
    this.clear();
    for (const output of outputs ?? []) this.add(output);
  }

  /** One output in the /execute shape, or a model tool output (logs, image). */
  add(output) {
    if (output.type === "clear") {
      this.clear();
      return;
    }
    if (output.type === "logs") {
      // The model's tool output is one text: what was printed, then any error's
      // traceback, which is shown as an error like a hand cell's.
      const { text, error } = splitLogs(output.logs ?? "");
      if (text) this.add({ type: "stream", name: "logs", text });
      if (error) this.add(error);
      return;
    }
    if (output.type === "stream") {
      if (!output.text) return; // nothing to show: no empty strip under the cell
      if (this.lastStream && this.lastStream.name === output.name) {
        // Consecutive text of one stream reads as one block, as in Jupyter.
        this.lastStream.output.text += output.text;
        this.lastStream.pre.replaceChildren(renderAnsi(applyCarriageReturns(this.lastStream.output.text)));
        return;
      }
      const stored = { ...output };
      this.outputs.push(stored);
      const pre = el("pre", "output-text");
      pre.append(renderAnsi(applyCarriageReturns(stored.text)));
      const node = wrap(`output output-stream output-${output.name}`, pre, () => stripAnsi(applyCarriageReturns(stored.text)));
      if (output.name === "stderr") node.setAttribute("aria-label", "Standard error");
      this.element.append(node);
      this.lastStream = { name: output.name, output: stored, pre };
      this.onChange?.();
      return;
    }
    this.lastStream = null;
    this.outputs.push(output);
    this.element.append(renderOutput(output));
    this.onChange?.();
  }

  /** Whether there is anything to show (an empty area draws no strip). */
  get empty() {
    return this.outputs.length === 0;
  }
}

/** A text version of outputs, as the model's own tool outputs read (``logs``). */
export function logsOf(outputs) {
  const parts = [];
  for (const output of outputs ?? []) {
    if (output.type === "stream") parts.push(output.text);
    else if (output.type === "result" || output.type === "display") {
      const data = output.data ?? {};
      if (Object.keys(data).some((type) => type.startsWith("image/"))) parts.push("[an image]\n");
      else if (data["text/plain"] != null) parts.push(`${data["text/plain"]}\n`);
    } else if (output.type === "error") {
      const lines = stripAnsi((output.traceback ?? []).join("\n")).split("\n").filter((l) => l.trim());
      const tail = lines.slice(-12);
      const summary = `${output.ename}: ${output.evalue}`;
      if (!tail.length || !summary.startsWith(tail.at(-1).trim())) tail.push(summary);
      parts.push(`${tail.join("\n")}\n`);
    }
  }
  return stripAnsi(parts.join(""));
}

function applyCarriageReturns(text) {
  if (!text.includes("\r")) return text;
  return text
    .split("\n")
    .map((line) => {
      let shown = "";
      for (const part of line.split("\r")) shown = part + shown.slice(part.length);
      return shown;
    })
    .join("\n");
}

/** An output block with a copy button (``copy()`` gives the text to copy). */
function wrap(className, content, copy) {
  const node = el("div", className);
  node.append(content);
  if (copy) {
    // The word is drawn by CSS, so that it is not part of the output's text.
    node.append(button("", "copy-output small-button", () => copyText(copy()), { label: "Copy output" }));
  }
  return node;
}

// -- the model's logs: its printed text and, at the end, an error ---------------------------

// How the service writes an error into logs: the traceback's last lines without colour,
// blank lines dropped, ending with "Name: message".
const ERROR_LAST_LINE = /^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Iteration|Died|Aborted|Warning))(?::\s?(.*))?$/;
const TRACEBACK_START = [
  /^-{20,}$/,
  /^\S+\s+Traceback \(most recent call last\)/,
  /^Traceback \(most recent call last\):/,
  /^\s*Cell In\[\d+\], line \d+/,
  /^\s*File [^\n]*(, line \d+|:\d+)/,
];
const ERROR_TAIL_LINES = 13;

/** ``{text, error}``: the logs' printed text, and the error they end with (or null). */
export function splitLogs(logs) {
  const lines = logs.replace(/\n+$/, "").split("\n");
  const last = lines.at(-1) ?? "";
  const summary = ERROR_LAST_LINE.exec(last);
  if (!summary) return { text: logs, error: null };
  // Older answers repeat a SyntaxError's last line with its file name: keep one.
  let end = lines.length;
  const previous = lines.at(-2);
  if (previous && ERROR_LAST_LINE.test(previous) && last.startsWith(`${previous} (`)) end -= 1;
  let start = end - 1;
  for (let i = Math.max(0, end - ERROR_TAIL_LINES); i < end - 1; i += 1) {
    if (TRACEBACK_START.some((pattern) => pattern.test(lines[i]))) {
      start = i;
      break;
    }
  }
  const final = ERROR_LAST_LINE.exec(lines[end - 1]);
  const text = lines.slice(0, start).join("\n");
  return {
    text: text ? `${text}\n` : "",
    error: {
      type: "error",
      ename: final[1],
      evalue: final[2] ?? "",
      traceback: lines.slice(start, end),
    },
  };
}

// -- rendering one output -------------------------------------------------------------------

function renderOutput(output) {
  if (output.type === "error") return renderError(output);
  if (output.type === "image") return renderImage(output.url, "Image the code produced");
  if (output.type === "result" || output.type === "display") return renderData(output);
  const pre = el("pre", "output-text", JSON.stringify(output));
  return wrap("output output-stream", pre, null);
}

/** The traceback without IPython's row of dashes and its wide header, which push the
 * first line far to the right: the red line above already names the error. */
export function tracebackLines(traceback) {
  const lines = (traceback ?? []).join("\n").split("\n");
  return lines.flatMap((line) => {
    const plain = stripAnsi(line);
    if (/^-{20,}\s*$/.test(plain)) return [];
    if (/^\S+\s{2,}Traceback \(most recent call last\)/.test(plain)) return ["Traceback (most recent call last):"];
    return [line];
  });
}

function renderError(output) {
  const head = el("div", "error-head", output.evalue ? `${output.ename}: ${output.evalue}` : output.ename);
  const pre = el("pre", "traceback");
  const lines = tracebackLines(output.traceback);
  const shown = lines.length ? lines.join("\n") : `${output.ename}: ${output.evalue}`;
  pre.append(renderAnsi(shown));
  const body = el("div", "error-body");
  body.append(head, pre);
  const node = wrap("output output-error", body, () => stripAnsi(shown));
  node.setAttribute("role", "group");
  node.setAttribute("aria-label", `Error: ${output.ename}`);
  return node;
}

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

function renderData(output) {
  const data = output.data ?? {};
  const plain = data["text/plain"];
  const image = IMAGE_TYPES.find((type) => type in data);
  if (image) {
    const url = `data:${image};base64,${String(data[image]).replace(/\s/g, "")}`;
    return renderImage(url, plain ? `Image output: ${plain}` : "Image output", image);
  }
  if ("image/svg+xml" in data) {
    // As an <img>, an SVG's scripts never run.
    const url = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(data["image/svg+xml"])}`;
    return renderImage(url, plain ? `Image output: ${plain}` : "Image output", "image/svg+xml");
  }
  const body = el("div", "output-body");
  let copy = () => plain ?? "";
  if ("text/html" in data) {
    body.classList.add("html-output");
    body.append(sanitizeHtml(data["text/html"]));
    if (plain == null) copy = () => body.innerText;
  } else if ("text/markdown" in data) {
    body.classList.add("markdown");
    body.append(renderMarkdown(data["text/markdown"]));
    copy = () => data["text/markdown"];
  } else {
    const pre = el("pre", "output-text");
    const text = plain ?? data["text/latex"] ?? JSON.stringify(data);
    pre.append(renderAnsi(text));
    body.append(pre);
    copy = () => stripAnsi(text);
  }
  const inner = el("div", "output-row");
  if (output.type === "result" && output.execution_count != null) {
    inner.append(el("div", "out-prompt", `Out[${output.execution_count}]:`));
  }
  inner.append(body);
  return wrap(`output output-data output-${output.type}`, inner, copy);
}

/** An image: click (or Enter) to enlarge; it can be downloaded from there. */
function renderImage(url, alt, type = "image/png") {
  const node = el("div", "output output-image");
  const open = button("", "image-open", () => showImage(url, alt, type), { label: "Enlarge image" });
  const img = el("img");
  img.src = url;
  img.alt = alt;
  img.loading = "lazy";
  open.append(img);
  node.append(open);
  return node;
}

let shownImages = 0;

function showImage(url, alt, type) {
  const dialog = document.getElementById("image-viewer");
  const img = document.getElementById("image-viewer-img");
  img.src = url;
  img.alt = alt;
  const link = document.getElementById("image-download");
  const extension = { "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp", "image/svg+xml": "svg" }[type] ?? "png";
  shownImages += 1;
  link.href = url;
  link.download = `figure-${shownImages}.${extension}`;
  link.textContent = `Download ${extension.toUpperCase()}`;
  dialog.showModal();
}

// -- HTML from the kernel -------------------------------------------------------------------

const KEPT_TAGS = new Set(
  ("table thead tbody tfoot tr th td caption colgroup col b i em strong code pre br p div " +
    "span ul ol li h1 h2 h3 h4 h5 h6 sub sup small hr blockquote dl dt dd abbr kbd samp var " +
    "mark del ins u s").split(" "),
);
// Dropped with everything inside them; any other unknown tag keeps its text.
const DROPPED_TAGS = new Set(
  ("script style template noscript iframe frame frameset object embed svg math head title " +
    "textarea select option button input form canvas video audio link meta base").split(" "),
);
const NUMERIC_ATTRIBUTES = new Set(["colspan", "rowspan", "span", "start"]);

/** A fragment holding the allowed structure and text of ``html``. */
export function sanitizeHtml(html) {
  const parsed = new DOMParser().parseFromString(String(html), "text/html");
  const fragment = document.createDocumentFragment();
  copyChildren(parsed.body, fragment, 0);
  return fragment;
}

function copyChildren(from, to, depth) {
  if (depth > 64) return;
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      to.append(document.createTextNode(node.nodeValue));
      continue;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = node.localName;
    if (DROPPED_TAGS.has(tag)) continue;
    if (!KEPT_TAGS.has(tag)) {
      copyChildren(node, to, depth + 1);
      continue;
    }
    const copy = document.createElement(tag);
    for (const attribute of node.attributes) {
      const name = attribute.name.toLowerCase();
      if (NUMERIC_ATTRIBUTES.has(name) && /^\d{1,4}$/.test(attribute.value)) {
        copy.setAttribute(name, attribute.value);
      } else if (name === "scope" && /^(row|col|rowgroup|colgroup)$/.test(attribute.value)) {
        copy.setAttribute(name, attribute.value);
      }
    }
    copyChildren(node, copy, depth + 1);
    to.append(copy);
  }
}

