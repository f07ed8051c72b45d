// Turn rendering: one model turn (the person's message, then the response's output
// items) as part of the notebook. There is one way to show an item: ``TurnView.upsert``
// takes an output item in the Responses API's shape and creates or updates its view.
// A stored response passes its finished items; a streamed one passes the same items
// while they grow, as ``TurnStream`` folds the stream's events into them.

import { containers } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { button, el, textOf } from "./ui.js";

export class TurnView {
  /**
   * @param {object} ctx  notebook (makes and numbers model cells), files (paths to
   *   links), store (the open conversation), chat (edit and regenerate)
   */
  constructor(ctx, { responseId = null, previousResponseId = null } = {}) {
    this.ctx = ctx;
    this.responseId = null;
    this.previousResponseId = previousResponseId;
    this.userText = "";
    this.views = new Map(); // item id -> {kind, node | cell | answer}
    this.element = el("div", "turn");
    this.setResponseId(responseId);
  }

  setResponseId(id) {
    this.responseId = id;
    if (id) this.element.dataset.responseId = id;
  }

  /** The person's message, with the files attached to it. */
  setUserMessage(text, attachments = []) {
    this.userText = text;
    this.element.querySelector(":scope > .msg-user")?.remove();
    const article = el("article", "msg msg-user");
    article.setAttribute("aria-label", "Your message");
    article.append(el("div", "msg-body", text));
    if (attachments.length) article.append(attachmentList(attachments));
    const tools = el("div", "msg-tools");
    // The word is drawn by CSS, so that it is not part of the message's text.
    tools.append(button("", "small-button msg-edit", () => this.startEditing(), { label: "Edit message" }));
    article.append(tools);
    this.element.prepend(article);
  }

  /** Edit the message in place; sending it runs the turn again from there. */
  startEditing() {
    const article = this.element.querySelector(":scope > .msg-user");
    if (!article || article.classList.contains("is-editing") || this.ctx.chat.busy) return;
    article.classList.add("is-editing");
    const form = el("form", "msg-edit-form");
    const area = el("textarea", "msg-edit-input");
    area.value = this.userText;
    area.setAttribute("aria-label", "Edit your message");
    area.rows = Math.min(8, this.userText.split("\n").length + 1);
    const actions = el("div", "msg-edit-actions");
    const cancel = button("Cancel", "", () => finish(false));
    const send = el("button", "primary", "Send");
    send.type = "submit";
    actions.append(cancel, send);
    form.append(area, actions);
    article.append(form);
    const finish = (submit) => {
      form.remove();
      article.classList.remove("is-editing");
      const text = area.value.trim();
      if (submit && text) this.ctx.chat.rerun(this, text);
      else article.querySelector(".msg-edit")?.focus();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      finish(true);
    });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      }
    });
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  /** Show ``item`` (a Responses output item, finished or still growing). */
  upsert(item) {
    if (!item?.id) return;
    let view = this.views.get(item.id);
    if (item.type === "reasoning") {
      if (!view) {
        const details = el("details", "reasoning");
        details.append(el("summary"), el("div", "reasoning-text"));
        view = { kind: "reasoning", node: details };
        this.place(item.id, view, details);
      }
      const streaming = item.status === "in_progress";
      const summary = view.node.querySelector("summary");
      summary.textContent = streaming ? "Thinking…" : "Reasoning";
      summary.classList.toggle("spinning", streaming);
      const text = textOf(item.content) || (item.summary ?? []).map((s) => s.text ?? "").join("");
      view.node.querySelector(".reasoning-text").textContent = text;
      if (!text && !streaming) view.node.hidden = true;
    } else if (item.type === "code_interpreter_call") {
      if (!view) {
        const cell = this.ctx.notebook.modelCell(item);
        view = { kind: "cell", cell };
        this.place(item.id, view, cell.element);
      }
      this.ctx.notebook.showModelCall(view.cell, item);
    } else if (item.type === "message") {
      if (!view) {
        const answer = new AnswerView(this.ctx);
        view = { kind: "answer", answer };
        this.place(item.id, view, answer.element);
      }
      view.answer.update(item);
    }
  }

  place(id, view, node) {
    this.views.set(id, view);
    // Notices and the regenerate button stay last.
    const after = this.element.querySelector(":scope > .turn-end");
    if (after) after.before(node);
    else this.element.append(node);
  }

  /** The turn ended: say how, if not plainly. */
  finish(response) {
    this.element.querySelector(":scope > .turn-end")?.remove();
    if (response.status === "failed" || response.error) {
      this.notice(`The model could not finish: ${response.error?.message ?? "failed"}`, "error");
    } else if (response.status === "incomplete") {
      const reason = response.incomplete_details?.reason;
      this.notice(`The answer stopped early${reason ? ` (${reason.replaceAll("_", " ")})` : ""}.`);
    } else if (response.status === "cancelled") {
      this.notice("Stopped before the answer was finished.");
    }
  }

  notice(text, kind = "notice") {
    this.element.append(el("p", `turn-${kind}`, text));
  }

  /** Offer "Regenerate" on this turn (the last one) only. */
  setRegenerable(on) {
    this.element.querySelector(":scope > .turn-end")?.remove();
    if (!on) return;
    const end = el("div", "turn-end");
    end.append(
      button("↻ Regenerate", "small-button regenerate", () => this.ctx.chat.rerun(this, this.userText), {
        title: "Answer this message again",
      }),
    );
    this.element.append(end);
  }

  modelCells() {
    return [...this.views.values()].filter((v) => v.kind === "cell").map((v) => v.cell);
  }
}

function attachmentList(attachments) {
  const list = el("ul", "attachments");
  list.setAttribute("aria-label", "Attached files");
  for (const file of attachments) {
    const item = el("li", "attachment", file.name);
    item.title = file.path;
    list.append(item);
  }
  return list;
}

// -- the answer --------------------------------------------------------------------------

/** The model's answer: Markdown, with cited files as links and chips. Rendering is
 * batched to one per frame while it streams. */
class AnswerView {
  constructor(ctx) {
    this.ctx = ctx;
    this.text = "";
    this.annotations = [];
    this.frame = null;
    this.element = el("article", "msg msg-assistant");
    this.element.setAttribute("aria-label", "Answer");
    this.body = el("div", "markdown");
    this.files = el("ul", "citations");
    this.files.setAttribute("aria-label", "Files in this answer");
    this.element.append(this.body, this.files);
  }

  update(item) {
    this.text = "";
    this.annotations = [];
    for (const part of item.content ?? []) {
      if (part.type === "output_text") {
        this.text += part.text ?? "";
        this.annotations.push(...(part.annotations ?? []));
      } else if (part.type === "refusal") {
        this.text += part.refusal ?? "";
      }
    }
    const streaming = item.status === "in_progress";
    this.element.classList.toggle("is-streaming", streaming);
    if (!streaming) {
      cancelAnimationFrame(this.frame);
      this.frame = null;
      this.render();
    } else if (this.frame === null) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        this.render();
      });
    }
  }

  render() {
    const citations = this.annotations.filter((a) => a.type === "container_file_citation");
    const resolveLink = (href) => {
      const cited = /^citation:(\d+)$/.exec(href);
      if (cited) {
        const citation = citations[Number(cited[1])];
        return { href: containers.fileUrl(citation.container_id, citation.file_id), download: citation.filename };
      }
      if (!/^sandbox:/i.test(href)) return null;
      // gpt-oss writes links to its files as sandbox:/mnt/data/NAME.
      const path = href.replace(/^sandbox:/i, "");
      const name = path.split("/").pop();
      const citation = citations.find((c) => c.filename === name);
      if (citation) return { href: containers.fileUrl(citation.container_id, citation.file_id), download: name };
      const file = this.ctx.files.findByPath(path);
      const containerId = this.ctx.store.head?.containerId;
      if (file && containerId) return { href: containers.fileUrl(containerId, file.id), download: name };
      return null;
    };
    this.body.replaceChildren(renderMarkdown(linkCitations(this.text, citations), { resolveLink }));
    this.files.replaceChildren();
    const shown = new Set();
    for (const citation of citations) {
      if (shown.has(citation.file_id)) continue;
      shown.add(citation.file_id);
      const item = el("li");
      const link = el("a", "file-chip", citation.filename);
      link.href = containers.fileUrl(citation.container_id, citation.file_id);
      link.download = citation.filename;
      link.title = `Download ${citation.filename}`;
      item.append(link);
      this.files.append(item);
    }
    this.files.hidden = shown.size === 0;
  }
}

/** The answer's text with each cited span made a Markdown link to ``citation:N``.
 * Indices count code points, as the server's Python strings do. */
function linkCitations(text, citations) {
  let chars = Array.from(text);
  const order = citations
    .map((citation, index) => ({ citation, index }))
    .filter(({ citation: c }) => Number.isInteger(c.start_index) && c.end_index > c.start_index && c.end_index <= chars.length)
    .sort((a, b) => b.citation.start_index - a.citation.start_index);
  let limit = chars.length;
  for (const { citation, index } of order) {
    const { start_index: start, end_index: end } = citation;
    if (end > limit) continue; // overlaps one already linked
    const before = chars.slice(0, start).join("");
    if (insideCodeOrLink(before)) continue;
    const label = chars.slice(start, end).join("").replace(/[\\`*_[\]]/g, "\\$&");
    chars = [...chars.slice(0, start), `[${label}](citation:${index})`, ...chars.slice(end)];
    limit = start;
  }
  return chars.join("");
}

function insideCodeOrLink(before) {
  const fences = before.split("\n").filter((line) => /^ {0,3}(```|~~~)/.test(line)).length;
  if (fences % 2) return true;
  const line = before.slice(before.lastIndexOf("\n") + 1);
  if ((line.match(/`/g) ?? []).length % 2) return true;
  return /\]\(\s*<?[^)\s]*$|\[[^\]]*$|sandbox:[^\s)]*$/.test(line);
}

// -- streaming -----------------------------------------------------------------------------

/**
 * Folds a Responses stream into output items, as the SDK's accumulator does, and shows
 * each change through the view's one ``upsert``. ``hooks``: created(response),
 * progress(text), container(id) (the container the model's code runs in).
 */
export class TurnStream {
  constructor(view, hooks) {
    this.view = view;
    this.hooks = hooks;
    this.items = new Map();
  }

  /** Handle one event; returns the final response object when the turn ends. */
  handle(type, data) {
    const item = data.item_id ? this.items.get(data.item_id) : null;
    switch (type) {
      case "response.created":
      case "response.in_progress":
        if (data.response?.id) this.hooks.created(data.response);
        return null;
      case "response.output_item.added": {
        const added = structuredClone(data.item);
        if (added.type === "code_interpreter_call") added.code ??= "";
        if (added.type === "reasoning") added.content ??= [];
        if (added.type === "message") added.content ??= [];
        added.status ??= "in_progress";
        this.items.set(added.id, added);
        this.view.upsert(added);
        if (added.container_id) this.hooks.container(added.container_id);
        const progress = { reasoning: "Thinking…", code_interpreter_call: "Writing code…", message: "Writing the answer…" };
        if (progress[added.type]) this.hooks.progress(progress[added.type]);
        return null;
      }
      case "response.reasoning_text.delta":
      case "response.reasoning_summary_text.delta":
        if (item) {
          const key = type === "response.reasoning_text.delta" ? "content" : "summary";
          item[key] ??= [];
          if (!item[key].length) item[key].push({ type: "reasoning_text", text: "" });
          item[key].at(-1).text += data.delta ?? "";
          this.view.upsert(item);
        }
        return null;
      case "response.code_interpreter_call_code.delta":
        if (item) {
          item.code += data.delta ?? "";
          this.view.upsert(item);
        }
        return null;
      case "response.code_interpreter_call_code.done":
        if (item && typeof data.code === "string") {
          item.code = data.code;
          this.view.upsert(item);
        }
        return null;
      case "response.code_interpreter_call.interpreting":
        if (item) {
          item.status = "interpreting";
          this.view.upsert(item);
          this.hooks.progress("Running code…");
        }
        return null;
      case "response.code_interpreter_call.completed":
        if (item) this.hooks.progress("Thinking…");
        return null;
      case "response.content_part.added":
        if (item && data.part) {
          item.content[data.content_index ?? item.content.length] = { ...data.part };
          this.view.upsert(item);
        }
        return null;
      case "response.output_text.delta":
        if (item) {
          this.part(item, data).text += data.delta ?? "";
          this.view.upsert(item);
        }
        return null;
      case "response.output_text.annotation.added":
        if (item && data.annotation) {
          this.part(item, data).annotations.push(data.annotation);
          this.view.upsert(item);
        }
        return null;
      case "response.output_text.done":
        if (item && typeof data.text === "string") {
          this.part(item, data).text = data.text;
          this.view.upsert(item);
        }
        return null;
      case "response.output_item.done":
        this.items.set(data.item.id, data.item);
        this.view.upsert(data.item);
        if (data.item.container_id) this.hooks.container(data.item.container_id);
        return null;
      case "response.completed":
      case "response.incomplete":
      case "response.failed":
        this.view.finish(data.response);
        return data.response;
      case "error": {
        const message = data.message ?? data.error?.message ?? "The service reported an error.";
        this.view.notice(message, "error");
        return { status: "failed", error: { code: data.code ?? data.error?.code ?? null, message } };
      }
      default:
        return null;
    }
  }

  part(item, data) {
    const index = data.content_index ?? 0;
    item.content[index] ??= { type: "output_text", text: "", annotations: [] };
    item.content[index].annotations ??= [];
    return item.content[index];
  }

  /** Items still open when the stream broke off: show them as stopped. */
  settle() {
    for (const item of this.items.values()) {
      if (item.status === "in_progress" || item.status === "interpreting") {
        item.status = "incomplete";
        this.view.upsert(item);
      }
    }
  }
}
