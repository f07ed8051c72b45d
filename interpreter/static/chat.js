// Talking to the model: sending a message as a streamed Responses request, showing the
// turn as it comes (turns.js), stopping it, editing a sent message or regenerating the
// last answer, and rebuilding the conversation from the response store on load.
//
// Cells run by hand since the model last answered go with the next message, as
// code_interpreter_call input items before it, so the model knows what the person ran.

import { ApiError, ServiceUnreachable, responses } from "./api.js";
import { isRunning } from "./conversation.js";
import { TurnStream, TurnView } from "./turns.js";
import { $, announce, el, hideBanner, showBanner, textOf } from "./ui.js";

const PENDING_POLL_MS = 1_500;
// The service runs one model and answers with it whatever the request names; this is
// sent when it does not list its models.
const FALLBACK_MODEL = "default";

export class Chat {
  constructor(ctx) {
    this.ctx = ctx;
    this.turn = null; // {controller, view, head, local, responseId} while a turn streams
    this.views = []; // the open conversation's turns, in order
    const input = $("composer-input");
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text || this.turn) return;
      input.value = "";
      ctx.store.local.draft = "";
      ctx.store.local.save();
      this.send(text);
    });
    input.addEventListener("input", () => {
      ctx.store.local.draft = input.value;
      ctx.store.local.save(300);
    });
    $("stop-turn").addEventListener("click", () => this.stop());
  }

  get busy() {
    return Boolean(this.turn);
  }

  reset() {
    this.views = [];
    this.progress(null);
  }

  // -- sending -------------------------------------------------------------------------------

  /**
   * Send ``text`` as a new turn after ``previousResponseId`` (the conversation's head
   * unless a turn is being redone); ``replace`` is the turn's element it takes the place
   * of, ``attachments`` files it carries besides those waiting in the message box.
   */
  async send(text, { previousResponseId, replace = null, attachments = [] } = {}) {
    const { ctx } = this;
    const { store, notebook, container } = ctx;
    if (this.turn) return;
    const head = store.head;
    const local = store.local;
    const previous = previousResponseId === undefined ? head.headResponseId : previousResponseId;
    store.setTitle(text, "message");
    if (!head.saved) store.save();
    const files = [...attachments, ...ctx.files.takePending()];
    const view = new TurnView(ctx, { previousResponseId: previous });
    view.setUserMessage(text, files);
    if (replace) replace.replaceWith(view.element);
    else notebook.append(view.element);
    this.views.push(view);
    ctx.scrollToEnd();

    const turn = { controller: new AbortController(), view, head, local, responseId: null };
    this.turn = turn;
    notebook.countsThisTurn = [];
    this.setTurnControls(true);
    this.progress("Thinking…");
    announce("The model is working.");
    container.render();

    // An expired container cannot take the turn: then the service starts a new one
    // (and tells the model), so learn the container's state first.
    if (head.containerId) await container.refresh();
    const runs = notebook.unsentRunItems();
    const request = {
      model: ctx.model ?? FALLBACK_MODEL,
      input: runs.length ? [...runs, { type: "message", role: "user", content: text }] : text,
      tools: [{ type: "code_interpreter", container: container.usable ? head.containerId : { type: "auto" } }],
      include: ["code_interpreter_call.outputs"],
      store: true,
      truncation: "auto",
    };
    if (previous) request.previous_response_id = previous;
    const stream = new TurnStream(view, {
      created: (response) => {
        if (turn.responseId) return;
        turn.responseId = response.id;
        view.setResponseId(response.id);
        head.pendingResponseId = response.id;
        store.saveHead(head);
        // The runs are part of the conversation now; the files belong to this message.
        local.unsent.splice(0, runs.length);
        if (files.length) local.attachments[response.id] = files;
        if (head === store.head) notebook.syncHandCells(local);
        local.save();
      },
      progress: (text) => this.turn === turn && this.progress(text),
      container: (id) => {
        if (head === store.head && (head.containerId !== id || !container.usable)) container.adopt(id);
      },
    });
    let final = null;
    try {
      await responses.stream(
        request,
        (type, data) => {
          if (this.turn === turn) final = stream.handle(type, data) ?? final;
        },
        { signal: turn.controller.signal },
      );
      if (!final && this.turn === turn) throw new ServiceUnreachable(new Error("the stream ended early"));
      if (final?.id) {
        // Even a failed turn is the conversation's head: the next one continues after it.
        head.headResponseId = final.id;
        head.pendingResponseId = null;
        store.saveHead(head);
        store.changed();
      }
      if (final?.error?.code === "container_expired") container.gone({ code: "container_expired" });
      if (final) announce(final.status === "completed" ? "The answer is ready." : `The turn ended: ${final.status}.`);
    } catch (error) {
      stream.settle();
      if (error.name === "AbortError") {
        view.notice("Stopped.");
        await this.settleAfterStop(turn);
      } else {
        const message = ctx.report(error, "container");
        if (!turn.responseId) {
          // Nothing reached the store: give the words and files back so nothing is lost.
          view.element.remove();
          this.views = this.views.filter((v) => v !== view);
          local.pending = [...files, ...local.pending];
          local.save();
          if (head === store.head) {
            ctx.files.renderPending();
            const input = $("composer-input");
            if (!input.value.trim()) input.value = text;
            local.draft = input.value;
            local.save();
          }
          if (replace && head === store.head) ctx.openConversation(head.id);
          if (!(error instanceof ApiError && error.containerGone)) this.showError(`Your message was not sent: ${message}`);
        } else {
          view.notice(`The turn broke off: ${message}`, "error");
        }
      }
    } finally {
      if (this.turn === turn) {
        this.turn = null;
        this.setTurnControls(false);
        this.progress(null);
        for (const cell of view.modelCells()) {
          if (notebook.modelRunning.delete(cell) && !notebook.isHandRun(cell)) cell.setState("idle");
          else if (cell.state === "writing") cell.setState("idle");
        }
        notebook.pump();
        this.updateRegenerable();
        container.render();
        container.refresh();
        ctx.files.refresh();
        this.numberCells(view, head);
      }
    }
  }

  /** Give the turn's model cells their execution counts, once the kernel is idle. */
  async numberCells(view, head) {
    const { notebook, variables, store } = this.ctx;
    const handCounts = notebook.countsThisTurn;
    let count = await variables.refresh();
    if (count == null && head === store.head && this.ctx.container.usable) {
      await notebook.whenIdle();
      if (head !== store.head) return;
      count = await variables.refresh();
    }
    if (head === store.head && count != null) notebook.numberModelCells(view.modelCells(), count, handCounts);
  }

  showError(text) {
    if (this.ctx.unreachable) return; // the banner already says so
    showBanner("turn", text, [["Dismiss", () => hideBanner("turn"), false]]);
  }

  stop() {
    const turn = this.turn;
    if (!turn) return;
    const running = turn.view.modelCells().some((cell) => cell.state === "running");
    turn.controller.abort();
    if (running && turn.head.containerId) this.ctx.container.interrupt();
  }

  /** After the person stops a turn: keep what the store kept of it, if anything. */
  async settleAfterStop(turn) {
    const head = turn.head;
    if (!turn.responseId) return;
    try {
      const response = await responses.retrieve(turn.responseId);
      if (!isRunning(response)) {
        head.headResponseId = response.id;
        head.pendingResponseId = null;
      }
    } catch {
      head.pendingResponseId = null;
    }
    this.ctx.store.saveHead(head);
  }

  /** Send ``text`` in place of the turn ``view`` (edited, or the same to regenerate):
   * that turn and those after it leave the page; cells written by hand stay. */
  rerun(view, text) {
    if (this.turn) return;
    const index = this.views.indexOf(view);
    if (index < 0) return;
    const local = this.ctx.store.local;
    const attachments = (view.responseId && local.attachments[view.responseId]) || [];
    for (const later of this.views.slice(index + 1)) later.element.remove();
    for (const gone of this.views.slice(index)) {
      for (const cell of gone.modelCells()) this.ctx.notebook.cells.delete(cell.key);
    }
    this.views = this.views.slice(0, index);
    this.send(text, { previousResponseId: view.previousResponseId, replace: view.element, attachments });
  }

  updateRegenerable() {
    const last = this.views.length - 1;
    this.views.forEach((view, index) => view.setRegenerable(!this.turn && index === last && Boolean(view.responseId)));
  }

  setTurnControls(streaming) {
    $("send").hidden = streaming;
    $("stop-turn").hidden = !streaming;
    document.body.classList.toggle("is-streaming", streaming);
  }

  progress(text) {
    $("turn-progress").hidden = !text;
    if (text) $("turn-progress-text").textContent = text;
  }

  // -- loading -------------------------------------------------------------------------------

  /** Rebuild the notebook: the stored responses in order, each followed by the cells
   * that were written by hand after it. */
  async restore(token) {
    const { ctx } = this;
    const { store, notebook } = ctx;
    const head = store.head;
    const local = store.local;
    const loading = el("p", "restoring muted", "Loading the conversation…");
    loading.setAttribute("role", "status");
    if (head.headResponseId || head.pendingResponseId) notebook.append(loading);
    let chain = [];
    try {
      chain = await store.loadChain();
    } catch (error) {
      loading.remove();
      if (token !== ctx.loadToken) return;
      const message = ctx.report(error);
      if (!(error instanceof ServiceUnreachable)) {
        showBanner("restore", `This conversation could not be loaded from the service: ${message}`, [
          ["Try again", () => ctx.openConversation(head.id), true],
        ]);
      }
    }
    if (token !== ctx.loadToken) return;
    loading.remove();

    const byAnchor = new Map();
    for (const record of local.handCells) {
      const anchor = record.after ?? "";
      if (!byAnchor.has(anchor)) byAnchor.set(anchor, []);
      byAnchor.get(anchor).push(record);
    }
    const place = (anchor) => {
      notebook.placeHandCells(byAnchor.get(anchor) ?? []);
      byAnchor.delete(anchor);
    };
    place("");
    const seen = new Set();
    for (const { response, inputs } of chain) {
      const view = new TurnView(ctx, { responseId: response.id, previousResponseId: response.previous_response_id ?? null });
      // Some stores list the whole history as a response's input: show only what is new.
      let fresh = inputs;
      const lastSeen = inputs.map((item) => seen.has(item.id)).lastIndexOf(true);
      if (lastSeen >= 0) fresh = inputs.slice(lastSeen + 1);
      const said = [];
      for (const item of fresh) {
        if (item.id) seen.add(item.id);
        if (item.type === "message" && item.role === "user") said.push(textOf(item.content));
      }
      view.setUserMessage(said.join("\n\n"), local.attachments[response.id] ?? []);
      for (const item of response.output ?? []) {
        if (item.id) seen.add(item.id);
        view.upsert(item);
      }
      view.finish(response);
      notebook.append(view.element);
      this.views.push(view);
      place(response.id);
    }
    for (const anchor of [...byAnchor.keys()]) place(anchor);
    notebook.updateEmpty();
    this.updateRegenerable();
    ctx.scrollToEnd();

    const last = chain.at(-1)?.response;
    if (isRunning(last)) this.watchPending(token, last.id);
  }

  /** A turn that was still running at reload: poll until it ends, then show it whole. */
  watchPending(token, responseId) {
    const { ctx } = this;
    this.progress("The model is still working on this…");
    const poll = async () => {
      if (token !== ctx.loadToken) return;
      try {
        const response = await responses.retrieve(responseId);
        if (isRunning(response)) {
          setTimeout(poll, PENDING_POLL_MS);
          return;
        }
        const head = ctx.store.head;
        head.headResponseId = response.id;
        head.pendingResponseId = null;
        ctx.store.saveHead(head);
        this.progress(null);
        ctx.openConversation(head.id);
      } catch (error) {
        this.progress(null);
        ctx.report(error);
      }
    };
    setTimeout(poll, PENDING_POLL_MS);
  }
}
