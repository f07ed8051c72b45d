// How a cell's outputs look: kernel outputs from /execute (streams, rich display data,
// errors) and the model's tool outputs from the Responses API (logs, images).
//
// Kernel HTML (a pandas table, say) is untrusted: it is parsed inert by DOMParser and
// rebuilt from an allow-list of tags with no attributes that can carry a URL, a style
// or a script, so only its structure and text survive.

import { renderAnsi } from "./highlight.js";
import { renderMarkdown } from "./markdown.js";

/** The output area of one cell; keeps its outputs as data so they can be saved. */
export class OutputArea {
  constructor(element) {
    this.element = element;
    this.outputs = [];
    this.lastStream = null; // {name, text, node} of the block the next stream text joins
  }

  clear() {
    this.outputs = [];
    this.lastStream = null;
    this.element.replaceChildren();
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
    if (output.type === "stream" || output.type === "logs") {
      const name = output.type === "logs" ? "logs" : output.name;
      const text = output.type === "logs" ? output.logs : output.text;
      if (this.lastStream && this.lastStream.name === name) {
        // Consecutive text of one stream reads as one block, as in Jupyter.
        this.lastStream.output.text += text;
        this.lastStream.node.replaceChildren(renderAnsi(applyCarriageReturns(this.lastStream.output.text)));
        return;
      }
      const stored = output.type === "logs" ? { type: "stream", name: "logs", text } : { ...output };
      this.outputs.push(stored);
      const node = document.createElement("pre");
      node.className = `output output-stream output-${name}`;
      if (name === "stderr") node.setAttribute("aria-label", "Standard error");
      node.append(renderAnsi(applyCarriageReturns(text)));
      this.element.append(node);
      this.lastStream = { name, output: stored, node };
      return;
    }
    this.lastStream = null;
    this.outputs.push(output);
    this.element.append(renderOutput(output));
  }
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

function renderOutput(output) {
  if (output.type === "error") return renderError(output);
  if (output.type === "image") {
    const wrap = div("output output-image");
    const img = document.createElement("img");
    img.src = output.url;
    img.alt = "Image the code produced";
    img.loading = "lazy";
    wrap.append(img);
    return wrap;
  }
  if (output.type === "result" || output.type === "display") return renderData(output);
  const pre = document.createElement("pre");
  pre.className = "output output-stream";
  pre.textContent = JSON.stringify(output);
  return pre;
}

function renderError(output) {
  const wrap = div("output output-error");
  wrap.setAttribute("role", "group");
  wrap.setAttribute("aria-label", `Error: ${output.ename}`);
  const head = div("error-head");
  head.textContent = output.evalue ? `${output.ename}: ${output.evalue}` : output.ename;
  const pre = document.createElement("pre");
  pre.className = "traceback";
  const traceback = (output.traceback ?? []).join("\n");
  pre.append(renderAnsi(traceback || `${output.ename}: ${output.evalue}`));
  wrap.append(head, pre);
  return wrap;
}

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

function renderData(output) {
  const data = output.data ?? {};
  const wrap = div(`output output-data output-${output.type}`);
  if (output.type === "result" && output.execution_count != null) {
    const prompt = div("out-prompt");
    prompt.textContent = `Out[${output.execution_count}]:`;
    wrap.append(prompt);
  }
  const body = div("output-body");
  wrap.append(body);
  const plain = data["text/plain"];
  const image = IMAGE_TYPES.find((type) => type in data);
  if (image) {
    const img = document.createElement("img");
    img.src = `data:${image};base64,${String(data[image]).replace(/\s/g, "")}`;
    img.alt = plain ? `Image output: ${plain}` : "Image output";
    body.append(img);
  } else if ("image/svg+xml" in data) {
    // As an <img>, an SVG's scripts never run.
    const img = document.createElement("img");
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(data["image/svg+xml"])}`;
    img.alt = plain ? `Image output: ${plain}` : "Image output";
    body.append(img);
  } else if ("text/html" in data) {
    body.classList.add("html-output");
    body.append(sanitizeHtml(data["text/html"]));
  } else if ("text/markdown" in data) {
    body.classList.add("markdown");
    body.append(renderMarkdown(data["text/markdown"]));
  } else {
    const pre = document.createElement("pre");
    pre.append(renderAnsi(plain ?? data["text/latex"] ?? JSON.stringify(data)));
    body.append(pre);
  }
  return wrap;
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

function div(className) {
  const node = document.createElement("div");
  node.className = className;
  return node;
}
