// A cell: code (an editor — a textarea over a highlighted copy of its text — a prompt
// like Jupyter's "In [3]:", and an output area) or Markdown (an editor that renders on
// run). Cells the model wrote fill in while it writes; any code cell can then be edited
// and run again by hand. A cell's code and its outputs can each be collapsed.
//
// The cell knows how it looks; what its buttons do is the notebook's (``actions``), and
// which keys do what is keyboard.js's.

import { highlightPython } from "./highlight.js";
import { renderMarkdown } from "./markdown.js";
import { OutputArea } from "./outputs.js";
import { button, copyText, el } from "./ui.js";

const INDENT = "    ";

export class Cell {
  /**
   * @param {object} init
   *   origin: "model" | "hand"; kind: "code" | "markdown"; key: a stable id (the call's
   *   item id, or a local one); code, outputs, executionCount, notice, rendered,
   *   collapsed ({code, output}).
   * @param {object} actions  run, interrupt, remove, move(cell, -1|1), select, changed
   */
  constructor(init, actions) {
    this.origin = init.origin;
    this.kind = init.kind ?? "code";
    this.key = init.key;
    this.actions = actions;
    this.executionCount = init.executionCount ?? null;
    // Ran where its number is not known (the model's calls): shown as [·], not [ ].
    this.ran = Boolean(init.ran);
    this.state = "idle"; // idle | writing | queued | running
    this.collapsed = { code: false, output: false, ...(init.collapsed ?? {}) };
    this.rendered = false;
    this.element = this.build();
    this.setCode(init.code ?? "");
    this.output.setAll(init.outputs ?? []);
    this.setNotice(init.notice ?? "");
    if (this.kind === "markdown" && init.rendered) this.renderMarkdownView();
    this.updatePrompt();
    this.updateCollapsed();
  }

  build() {
    const section = el("section", `cell cell-${this.origin} cell-kind-${this.kind}`);
    section.dataset.key = this.key;
    // Focusable but out of the Tab order: it holds the focus in command mode.
    section.tabIndex = -1;
    section.addEventListener("focusin", () => this.actions.select(this));
    section.addEventListener("mousedown", () => this.actions.select(this));

    this.promptNode = el("div", "cell-prompt");
    this.promptNode.setAttribute("aria-hidden", "true");

    const body = el("div", "cell-body");
    const head = el("div", "cell-head");
    const origin = el("span", "cell-origin", this.originLabel());
    this.originNode = origin;
    // The prompt column is hidden in narrow windows; this shows its number there.
    this.countNode = el("span", "cell-count");
    this.countNode.setAttribute("aria-hidden", "true");
    this.stateNode = el("span", "cell-state");
    const tools = el("div", "cell-tools");
    this.runButton = button("Run", "cell-button run", () => this.actions.run(this), {
      title: "Run this cell (Shift+Enter)",
    });
    this.stopButton = button("Interrupt", "cell-button interrupt danger", () => this.actions.interrupt(this));
    this.stopButton.hidden = true;
    const more = el("span", "cell-more");
    more.append(
      button("Copy", "cell-button copy-code", () => copyText(this.code), { label: "Copy code" }),
    );
    if (this.origin === "hand") {
      this.upButton = button("↑", "cell-button move-up", () => this.actions.move(this, -1), {
        label: "Move cell up",
        title: "Move up (Ctrl+Shift+↑)",
      });
      this.downButton = button("↓", "cell-button move-down", () => this.actions.move(this, 1), {
        label: "Move cell down",
        title: "Move down (Ctrl+Shift+↓)",
      });
      this.removeButton = button("Delete", "cell-button remove", () => this.actions.remove(this), {
        label: "Delete cell",
        title: "Delete (D, D; undo with Z)",
      });
      more.append(this.upButton, this.downButton, this.removeButton);
    }
    tools.append(more, this.runButton, this.stopButton);
    head.append(origin, this.countNode, this.stateNode, tools);

    // The code, with a collapser along its left edge and a stand-in when collapsed.
    const codePart = el("div", "cell-part cell-code");
    this.codeCollapser = collapser(() => this.toggleCollapsed("code"));
    const editor = el("div", "editor");
    this.highlightNode = el("pre", "editor-highlight");
    this.highlightNode.setAttribute("aria-hidden", "true");
    const textarea = el("textarea", "editor-input");
    textarea.spellcheck = false;
    textarea.autocapitalize = "off";
    textarea.setAttribute("autocomplete", "off");
    textarea.setAttribute("autocorrect", "off");
    textarea.rows = 1;
    textarea.wrap = "soft";
    textarea.addEventListener("input", () => {
      this.renderHighlight();
      this.actions.changed(this);
    });
    this.textarea = textarea;
    editor.append(this.highlightNode, textarea);
    this.editorNode = editor;
    this.codeStandIn = button("", "collapsed-stand-in", () => this.toggleCollapsed("code"));
    this.markdownView = el("div", "markdown markdown-cell");
    this.markdownView.hidden = true;
    this.markdownView.addEventListener("dblclick", () => this.editMarkdown());
    codePart.append(this.codeCollapser, editor, this.codeStandIn, this.markdownView);

    this.noticeNode = el("p", "cell-notice");
    this.noticeNode.hidden = true;

    const outputPart = el("div", "cell-part cell-output-part");
    this.outputCollapser = collapser(() => this.toggleCollapsed("output"));
    const outputs = el("div", "cell-outputs");
    this.output = new OutputArea(outputs, () => this.outputPart && this.updateCollapsed());
    this.outputStandIn = button("", "collapsed-stand-in", () => this.toggleCollapsed("output"));
    outputPart.append(this.outputCollapser, outputs, this.outputStandIn);
    this.outputPart = outputPart;

    body.append(head, codePart, this.noticeNode, outputPart);
    section.append(this.promptNode, body);
    return section;
  }

  originLabel() {
    if (this.kind === "markdown") return "Markdown";
    return this.origin === "model" ? "Model" : "You";
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
    const text = this.textarea.value;
    const shown = this.kind === "code" ? highlightPython(text) : document.createTextNode(text);
    this.highlightNode.replaceChildren(shown, "\n");
    if (this.collapsed.code) this.updateCollapsed();
  }

  /** Turn a hand cell into Markdown or code (Jupyter's M and Y). */
  setKind(kind) {
    if (this.origin !== "hand" || kind === this.kind) return;
    this.element.classList.replace(`cell-kind-${this.kind}`, `cell-kind-${kind}`);
    this.kind = kind;
    this.originNode.textContent = this.originLabel();
    if (kind === "code") this.editMarkdown();
    this.output.clear();
    this.executionCount = null;
    this.renderHighlight();
    this.updatePrompt();
    this.updateCollapsed();
    this.actions.changed(this);
  }

  /** A Markdown cell's run: show it rendered instead of its source. */
  renderMarkdownView() {
    this.rendered = true;
    this.markdownView.replaceChildren(renderMarkdown(this.code));
    this.markdownView.hidden = false;
    this.editorNode.hidden = true;
    this.element.classList.add("is-rendered");
  }

  editMarkdown() {
    if (!this.rendered) return;
    this.rendered = false;
    this.markdownView.hidden = true;
    this.editorNode.hidden = false;
    this.element.classList.remove("is-rendered");
    this.actions.changed(this);
  }

  toggleCollapsed(part) {
    this.collapsed[part] = !this.collapsed[part];
    this.updateCollapsed();
    this.actions.changed(this);
  }

  updateCollapsed() {
    const { code, output } = this.collapsed;
    const lines = this.code ? this.code.split("\n").length : 0;
    this.editorNode.classList.toggle("is-collapsed", code);
    this.markdownView.classList.toggle("is-collapsed", code);
    this.codeStandIn.hidden = !code;
    this.codeStandIn.textContent = `⋯ ${lines} ${lines === 1 ? "line" : "lines"} hidden`;
    this.codeStandIn.title = "Show code";
    setCollapser(this.codeCollapser, code, "code");
    const hasOutput = !this.output.empty;
    this.outputPart.hidden = !hasOutput;
    this.output.element.hidden = output;
    this.outputStandIn.hidden = !output;
    this.outputStandIn.textContent = "⋯ output hidden";
    this.outputStandIn.title = "Show output";
    setCollapser(this.outputCollapser, output, "output");
  }

  /** Where this cell is in its life: writing (the model types), queued, running, idle.
   * A queued cell can be taken out of the queue, unless the service holds it (a model's
   * call waiting for the kernel: the turn's Stop ends it). */
  setState(state, { cancellable = true } = {}) {
    this.state = state;
    const busy = state === "running" || state === "queued";
    this.element.classList.toggle("is-busy", busy || state === "writing");
    this.element.classList.toggle("is-queued", state === "queued");
    this.element.setAttribute("aria-busy", String(busy || state === "writing"));
    this.textarea.readOnly = state === "writing";
    this.runButton.hidden = busy || state === "writing";
    this.stopButton.hidden = !busy || (state === "queued" && !cancellable);
    this.stopButton.textContent = state === "queued" ? "Cancel" : "Interrupt";
    if (this.removeButton) this.removeButton.disabled = busy;
    const labels = { writing: "Writing code…", queued: "Waiting…", running: "Running…" };
    this.stateNode.textContent = labels[state] ?? "";
    this.stateNode.classList.toggle("spinning", state === "running" || state === "writing");
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
    const number = this.executionCount != null ? ` ${this.executionCount}` : "";
    const who = this.origin === "model" ? "written by the model" : "written by you";
    if (this.kind === "markdown") {
      this.promptNode.textContent = "";
      this.countNode.textContent = "";
      this.element.setAttribute("aria-label", "Markdown cell");
      this.textarea.setAttribute("aria-label", "Markdown");
      return;
    }
    // A queued cell waits its turn: Jupyter's [*] is for the one that runs.
    const count = this.state === "running" ? "*" : this.state === "queued" ? "…" : this.executionCount ?? (this.ran ? "·" : " ");
    this.promptNode.textContent = `In [${count}]:`;
    this.countNode.textContent = `[${count}]`;
    this.element.setAttribute("aria-label", `Code cell${number}, ${who}`);
    this.textarea.setAttribute("aria-label", `Code${number ? ` of cell${number}` : ""}`);
  }

  setNotice(text) {
    this.noticeNode.textContent = text;
    this.noticeNode.hidden = !text;
  }

  get notice() {
    return this.noticeNode.textContent;
  }

  /** Edit mode: the caret in the editor (a rendered Markdown cell opens for editing). */
  edit() {
    if (this.kind === "markdown") this.editMarkdown();
    if (this.collapsed.code) this.toggleCollapsed("code");
    this.textarea.focus();
  }

  /** Command mode: the cell itself holds the focus. */
  command() {
    this.element.focus({ preventScroll: true });
    this.element.scrollIntoView({ block: "nearest" });
  }

  setSelected(selected) {
    this.element.classList.toggle("is-selected", selected);
  }

  // -- editing helpers (the keys are keyboard.js's) --------------------------------------------

  indent() {
    insertText(this.textarea, INDENT);
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

  /** A new line keeping the line's indentation, one level more after a colon. */
  newline() {
    const textarea = this.textarea;
    const before = textarea.value.slice(0, textarea.selectionStart);
    const line = before.slice(before.lastIndexOf("\n") + 1);
    let indent = /^[ \t]*/.exec(line)[0];
    if (this.kind === "code" && /:\s*(#.*)?$/.test(line)) indent += INDENT;
    insertText(textarea, `\n${indent}`);
  }

  /** Replace ``[start, end)`` (UTF-16 offsets) of the code, as typing would. */
  replaceRange(start, end, text) {
    this.textarea.setSelectionRange(start, end);
    insertText(this.textarea, text);
  }

  /** The caret's on-screen box, from the highlighted copy laid under the textarea. */
  caretRect() {
    const offset = this.textarea.selectionStart;
    const walker = document.createTreeWalker(this.highlightNode, NodeFilter.SHOW_TEXT);
    let left = offset;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (left <= node.length) {
        const range = document.createRange();
        range.setStart(node, left);
        range.setEnd(node, left);
        const rect = range.getClientRects()[0] ?? range.getBoundingClientRect();
        if (rect && (rect.width || rect.height || rect.left)) return rect;
        break;
      }
      left -= node.length;
    }
    return this.textarea.getBoundingClientRect();
  }
}

function collapser(onClick) {
  const node = button("", "collapser", onClick);
  node.tabIndex = -1; // the stand-in and the O key do this from the keyboard
  return node;
}

function setCollapser(node, collapsed, part) {
  node.setAttribute("aria-expanded", String(!collapsed));
  node.setAttribute("aria-label", collapsed ? `Show ${part}` : `Hide ${part}`);
  node.title = collapsed ? `Show ${part}` : `Hide ${part}`;
}

function insertText(textarea, text) {
  // execCommand keeps the browser's undo history; setRangeText is the fallback.
  if (document.activeElement !== textarea) textarea.focus();
  if (!document.execCommand?.("insertText", false, text)) {
    textarea.setRangeText(text, textarea.selectionStart, textarea.selectionEnd, "end");
    textarea.dispatchEvent(new Event("input"));
  }
}
