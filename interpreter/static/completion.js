// Tab completion and Shift+Tab help, from the kernel itself (its complete_request and
// inspect_request, through POST /v1/containers/{id}/complete and /inspect), shown at
// the caret: a list to choose from, or the help text.
//
// The kernel counts the cursor in code points, the textarea in UTF-16 units: offsets
// are converted both ways.

import { ApiError, containers } from "./api.js";
import { renderAnsi } from "./highlight.js";
import { $, el } from "./ui.js";

const MAX_SHOWN = 200;

export class Completer {
  constructor(ctx) {
    this.ctx = ctx;
    this.list = $("completions");
    this.help = $("help-tooltip");
    this.state = null; // {cell, start, matches: [{text, type}], shown, active}
    this.helpState = null; // {cell, detail}
    this.request = null;
    this.list.addEventListener("mousedown", (event) => {
      const option = event.target.closest("[role=option]");
      if (!option) return;
      event.preventDefault(); // keep the caret in the editor
      this.accept(Number(option.dataset.index));
    });
    document.addEventListener("mousedown", (event) => {
      if (!this.list.contains(event.target)) this.close();
      if (!this.help.contains(event.target)) this.closeHelp();
    });
    window.addEventListener("resize", () => {
      this.close();
      this.closeHelp();
    });
  }

  get open() {
    return this.state !== null;
  }

  get helpOpen() {
    return this.helpState !== null;
  }

  /** Ask the kernel what may complete the code at the caret (Tab). */
  async complete(cell) {
    this.closeHelp();
    const containerId = await this.kernelFor(cell);
    if (!containerId) return;
    const code = cell.code;
    const caret = cell.textarea.selectionStart;
    this.request?.abort();
    const request = new AbortController();
    this.request = request;
    let reply;
    try {
      reply = await containers.complete(containerId, code, codePoints(code, caret), { signal: request.signal });
    } catch (error) {
      if (error.name !== "AbortError") this.explain(cell, error);
      return;
    }
    // Typed on meanwhile, or left: the answer is stale.
    if (this.request !== request || cell.code !== code || cell.textarea.selectionStart !== caret) return;
    this.request = null;
    const matches = reply.matches.slice(0, MAX_SHOWN).map((text, i) => ({ text, type: reply.types?.[i] ?? null }));
    const start = utf16(code, reply.cursor_start);
    const end = utf16(code, reply.cursor_end);
    if (!matches.length) {
      // IPython's completer reads live objects: what a cell defines counts once it ran.
      const text = "No completions. (They come from what the kernel holds: run a cell first to complete what it defines.)";
      this.showHelp(cell, document.createTextNode(text), { transient: true });
      return;
    }
    if (matches.length === 1) {
      cell.replaceRange(start, end, matches[0].text);
      return;
    }
    // Text after the caret that belongs to the name being completed goes too.
    this.state = { cell, start, end, matches, shown: matches, active: 0 };
    this.renderList();
  }

  /** The container, once the kernel is free: a question asked while cells run waits
   * for them (as a Jupyter kernel would), saying so. False if the person moved on. */
  async kernelFor(cell) {
    const { notebook } = this.ctx;
    if (notebook.busy()) {
      const code = cell.code;
      const caret = cell.textarea.selectionStart;
      this.showHelp(cell, document.createTextNode("Waiting for the running code to finish…"), { transient: true });
      await notebook.whenIdle();
      const moved = cell.code !== code || cell.textarea.selectionStart !== caret || document.activeElement !== cell.textarea;
      this.closeHelp();
      if (moved) return null;
    }
    return this.containerId();
  }

  async containerId() {
    try {
      return await this.ctx.container.ensure();
    } catch (error) {
      this.ctx.report(error, "container");
      return null;
    }
  }

  explain(cell, error) {
    const text =
      error instanceof ApiError && error.kernelBusy
        ? "The kernel is busy running code; completion and help work when it is idle."
        : this.ctx.report(error, "container");
    this.showHelp(cell, document.createTextNode(text), { transient: true });
  }

  /** The person typed on with the list open: narrow it to what still fits. */
  filter() {
    const state = this.state;
    if (!state) return;
    const caret = state.cell.textarea.selectionStart;
    if (caret < state.start) {
      this.close();
      return;
    }
    const typed = state.cell.code.slice(state.start, caret).toLowerCase();
    state.shown = state.matches.filter((m) => m.text.toLowerCase().startsWith(typed));
    state.end = caret;
    state.active = 0;
    if (!state.shown.length) this.close();
    else this.renderList();
  }

  renderList() {
    const { cell, shown, active } = this.state;
    this.list.replaceChildren();
    shown.forEach((match, index) => {
      const option = el("li", "completion");
      option.setAttribute("role", "option");
      option.id = `completion-${index}`;
      option.dataset.index = String(index);
      option.setAttribute("aria-selected", String(index === active));
      option.append(el("span", "completion-text", match.text));
      if (match.type) option.append(el("span", "completion-type", match.type));
      this.list.append(option);
    });
    this.list.hidden = false;
    cell.textarea.setAttribute("aria-controls", "completions");
    cell.textarea.setAttribute("aria-activedescendant", `completion-${active}`);
    place(this.list, cell.caretRect());
    this.list.children[active]?.scrollIntoView({ block: "nearest" });
  }

  move(step) {
    const state = this.state;
    state.active = (state.active + step + state.shown.length) % state.shown.length;
    this.renderList();
  }

  accept(index = this.state?.active ?? 0) {
    const state = this.state;
    if (!state) return;
    const match = state.shown[index];
    this.close();
    if (match) state.cell.replaceRange(state.start, Math.max(state.end, state.cell.textarea.selectionStart), match.text);
  }

  close() {
    if (!this.state) return;
    this.state.cell.textarea.removeAttribute("aria-activedescendant");
    this.state = null;
    this.list.hidden = true;
    this.list.replaceChildren();
  }

  /** Keys while the list is open; true if the key was used. */
  handleKey(event) {
    if (!this.state) return false;
    if (event.key === "ArrowDown" || (event.key === "Tab" && !event.shiftKey)) this.move(1);
    else if (event.key === "ArrowUp" || (event.key === "Tab" && event.shiftKey)) this.move(-1);
    else if (event.key === "Enter") this.accept();
    else if (event.key === "Escape") this.close();
    else return false;
    event.preventDefault();
    event.stopPropagation();
    return true;
  }

  // -- help -------------------------------------------------------------------------------

  /** The kernel's help for the name at the caret (Shift+Tab; again for more). */
  async inspect(cell) {
    this.close();
    const detail = this.helpState?.cell === cell && !this.helpState.transient ? 1 : 0;
    const containerId = await this.kernelFor(cell);
    if (!containerId) return;
    const code = cell.code;
    const caret = cell.textarea.selectionStart;
    let reply;
    try {
      reply = await containers.inspect(containerId, code, codePoints(code, caret), detail);
    } catch (error) {
      this.explain(cell, error);
      return;
    }
    if (cell.code !== code) return;
    const text = reply.found ? reply.data["text/plain"] ?? "" : "";
    const body = text ? renderAnsi(text) : document.createTextNode("No help found for this name.");
    this.showHelp(cell, body, { transient: !text, detail });
  }

  showHelp(cell, content, { transient = false, detail = 0 } = {}) {
    const pre = el("pre", "help-text");
    pre.append(content);
    this.help.replaceChildren(pre);
    this.help.hidden = false;
    this.help.classList.toggle("is-detailed", detail > 0);
    this.helpState = { cell, transient, detail };
    cell.textarea.setAttribute("aria-describedby", "help-tooltip");
    place(this.help, cell.caretRect());
  }

  closeHelp() {
    if (!this.helpState) return;
    this.helpState.cell.textarea.removeAttribute("aria-describedby");
    this.helpState = null;
    this.help.hidden = true;
  }
}

/** Put a floating box under the caret, or above it when there is no room below. */
function place(node, rect) {
  node.style.left = "0px";
  node.style.top = "0px";
  const box = node.getBoundingClientRect();
  const left = Math.max(4, Math.min(rect.left, window.innerWidth - box.width - 4));
  let top = rect.bottom + 4;
  if (top + box.height > window.innerHeight - 4) top = Math.max(4, rect.top - box.height - 4);
  node.style.left = `${left}px`;
  node.style.top = `${top}px`;
}

function codePoints(text, utf16Offset) {
  return Array.from(text.slice(0, utf16Offset)).length;
}

function utf16(text, codePointOffset) {
  return Array.from(text).slice(0, codePointOffset).join("").length;
}
