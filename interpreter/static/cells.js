// A code cell: an editor (a textarea over a highlighted copy of its text), a prompt
// like Jupyter's "In [3]:", a toolbar and an output area. Cells written by the model
// fill in while it writes; any cell can then be edited and run again by hand.

import { highlightPython } from "./highlight.js";
import { OutputArea } from "./outputs.js";

const INDENT = "    ";

export class Cell {
  /**
   * @param {object} init
   *   origin: "model" | "hand"; key: a stable id (the call's item id, or a local one);
   *   code, outputs, executionCount; and callbacks run(cell), interrupt(cell),
   *   remove(cell), changed(cell).
   */
  constructor(init) {
    this.origin = init.origin;
    this.key = init.key;
    this.callbacks = init;
    this.executionCount = init.executionCount ?? null;
    // Ran where its number is not known (the model's calls): shown as [·], not [ ].
    this.ran = Boolean(init.ran);
    this.state = "idle"; // idle | writing | queued | running
    this.element = this.build();
    this.setCode(init.code ?? "");
    this.output.setAll(init.outputs ?? []);
    this.setNotice(init.notice ?? "");
    this.updatePrompt();
  }

  build() {
    const section = document.createElement("section");
    section.className = `cell cell-${this.origin}`;
    section.dataset.key = this.key;

    const prompt = document.createElement("div");
    prompt.className = "cell-prompt";
    prompt.setAttribute("aria-hidden", "true");
    this.promptNode = prompt;

    const body = document.createElement("div");
    body.className = "cell-body";

    const head = document.createElement("div");
    head.className = "cell-head";
    const origin = document.createElement("span");
    origin.className = "cell-origin";
    origin.textContent = this.origin === "model" ? "Model" : "You";
    const state = document.createElement("span");
    state.className = "cell-state";
    this.stateNode = state;
    const tools = document.createElement("div");
    tools.className = "cell-tools";
    this.runButton = button("Run", "run", () => this.callbacks.run(this));
    this.runButton.title = "Run this cell (Shift+Enter)";
    this.stopButton = button("Interrupt", "interrupt danger", () => this.callbacks.interrupt(this));
    this.stopButton.hidden = true;
    tools.append(this.runButton, this.stopButton);
    if (this.origin === "hand") {
      this.removeButton = button("Delete", "remove", () => this.callbacks.remove(this));
      tools.append(this.removeButton);
    }
    // The prompt column is hidden in narrow windows; this shows its number there.
    const count = document.createElement("span");
    count.className = "cell-count";
    count.setAttribute("aria-hidden", "true");
    this.countNode = count;
    head.append(origin, count, state, tools);

    const editor = document.createElement("div");
    editor.className = "editor";
    const highlight = document.createElement("pre");
    highlight.className = "editor-highlight";
    highlight.setAttribute("aria-hidden", "true");
    this.highlightNode = highlight;
    const textarea = document.createElement("textarea");
    textarea.className = "editor-input";
    textarea.spellcheck = false;
    textarea.autocapitalize = "off";
    textarea.setAttribute("autocomplete", "off");
    textarea.setAttribute("autocorrect", "off");
    textarea.rows = 1;
    textarea.wrap = "soft";
    textarea.addEventListener("input", () => {
      this.renderHighlight();
      this.callbacks.changed(this);
    });
    textarea.addEventListener("keydown", (event) => this.onKey(event));
    this.textarea = textarea;
    editor.append(highlight, textarea);

    const notice = document.createElement("p");
    notice.className = "cell-notice";
    notice.hidden = true;
    this.noticeNode = notice;

    const outputs = document.createElement("div");
    outputs.className = "cell-outputs";
    this.output = new OutputArea(outputs);

    body.append(head, editor, notice, outputs);
    section.append(prompt, body);
    return section;
  }

  get code() {
    return this.textarea.value;
  }

  get outputs() {
    return this.output.outputs;
  }

  setCode(code) {
    this.textarea.value = code;
    this.renderHighlight();
  }

  appendCode(delta) {
    this.textarea.value += delta;
    this.renderHighlight();
  }

  renderHighlight() {
    // The trailing newline keeps the copy as tall as the textarea when the code ends
    // in an empty line.
    this.highlightNode.replaceChildren(highlightPython(this.textarea.value), "\n");
  }

  /** Where this cell is in its life: writing (the model types), queued, running, idle. */
  setState(state, label = "") {
    this.state = state;
    const busy = state === "running" || state === "queued";
    this.element.classList.toggle("is-busy", busy || state === "writing");
    this.element.setAttribute("aria-busy", String(busy || state === "writing"));
    this.textarea.readOnly = state === "writing";
    this.runButton.hidden = busy || state === "writing";
    this.stopButton.hidden = !busy;
    if (this.removeButton) this.removeButton.disabled = busy;
    const labels = { writing: "Writing code…", queued: "Waiting…", running: "Running…" };
    this.stateNode.textContent = label || labels[state] || "";
    this.stateNode.classList.toggle("spinning", state !== "idle");
    this.updatePrompt();
  }

  setExecutionCount(count) {
    this.executionCount = count ?? null;
    this.updatePrompt();
  }

  markRan() {
    this.ran = true;
    this.updatePrompt();
  }

  updatePrompt() {
    const busy = this.state === "running" || this.state === "queued";
    const count = busy ? "*" : this.executionCount ?? (this.ran ? "·" : " ");
    this.promptNode.textContent = `In [${count}]:`;
    this.countNode.textContent = `[${count}]`;
    const who = this.origin === "model" ? "written by the model" : "written by you";
    const number = this.executionCount != null ? ` ${this.executionCount}` : "";
    this.element.setAttribute("aria-label", `Code cell${number}, ${who}`);
    this.textarea.setAttribute("aria-label", `Code${number ? ` of cell${number}` : ""}`);
  }

  setNotice(text) {
    this.noticeNode.textContent = text;
    this.noticeNode.hidden = !text;
  }

  focus() {
    this.textarea.focus();
  }

  onKey(event) {
    const textarea = this.textarea;
    if (event.key === "Enter" && (event.shiftKey || event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (this.state === "idle") this.callbacks.run(this);
      return;
    }
    if (textarea.readOnly) return;
    if (event.key === "Escape") {
      // Leaves the editor so that Tab moves focus again instead of indenting.
      event.preventDefault();
      this.runButton.hidden ? this.stopButton.focus() : this.runButton.focus();
      return;
    }
    if (event.key === "Tab" && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      if (event.shiftKey) this.dedent();
      else insertText(textarea, INDENT);
      return;
    }
    if (event.key === "Enter" && !event.altKey) {
      // Keep the line's indentation, one level more after a colon.
      event.preventDefault();
      const before = textarea.value.slice(0, textarea.selectionStart);
      const line = before.slice(before.lastIndexOf("\n") + 1);
      let indent = /^[ \t]*/.exec(line)[0];
      if (/:\s*(#.*)?$/.test(line)) indent += INDENT;
      insertText(textarea, `\n${indent}`);
    }
  }

  dedent() {
    const textarea = this.textarea;
    const start = textarea.value.lastIndexOf("\n", textarea.selectionStart - 1) + 1;
    const removable = /^ {1,4}/.exec(textarea.value.slice(start));
    if (!removable) return;
    const caret = textarea.selectionStart;
    textarea.setSelectionRange(start, start + removable[0].length);
    insertText(textarea, "");
    const back = Math.max(start, caret - removable[0].length);
    textarea.setSelectionRange(back, back);
  }
}

function insertText(textarea, text) {
  // execCommand keeps the browser's undo history; setRangeText is the fallback.
  if (!document.execCommand?.("insertText", false, text)) {
    textarea.setRangeText(text, textarea.selectionStart, textarea.selectionEnd, "end");
    textarea.dispatchEvent(new Event("input"));
  }
}

function button(label, className, onClick) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = `cell-button ${className}`;
  node.textContent = label;
  node.addEventListener("click", onClick);
  return node;
}
