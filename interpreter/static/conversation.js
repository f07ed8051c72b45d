// The conversation store: which conversation is open, the list of them, and what each
// keeps in the browser. The turns themselves live in the service's response store and
// are read back by walking previous_response_id from the conversation's head.
//
// A conversation's head (listed in the sidebar):
//   {id, title, titleSource, headResponseId, pendingResponseId, containerId, createdAt,
//    updatedAt, saved}
// Its local state (LocalState below): cells run by hand, edits of the model's cells,
// their execution counts, collapsed parts, attachments, runs not yet told to the model,
// and the draft.

import { ApiError, responses } from "./api.js";
import * as store from "./store.js";

const FIELDS = ["handCells", "edits", "counts", "collapsed", "attachments", "pending", "unsent", "draft"];
const TITLE_CHARS = 60;

/** One conversation's browser-side state; ``save`` writes it (now, or after quiet). */
export class LocalState {
  constructor(convId, raw = store.loadLocal(convId)) {
    this.convId = convId;
    for (const field of FIELDS) this[field] = raw[field];
    this.timer = null;
  }

  toJSON() {
    return Object.fromEntries(FIELDS.map((field) => [field, this[field]]));
  }

  save(delayMs = 0) {
    clearTimeout(this.timer);
    this.timer = null;
    if (delayMs) {
      this.timer = setTimeout(() => this.save(), delayMs);
      LocalState.pending.add(this);
      return;
    }
    LocalState.pending.delete(this);
    store.saveLocal(this.convId, this.toJSON());
  }

  /** Write every state still waiting for quiet (the page is going away). */
  static flushAll() {
    for (const local of [...LocalState.pending]) local.save();
  }
}
LocalState.pending = new Set();

export class ConversationStore {
  constructor() {
    this.head = null;
    this.local = null;
    this.listeners = new Set();
  }

  /** ``fn()`` runs whenever the list of conversations (or a title) changes. */
  onListChange(fn) {
    this.listeners.add(fn);
  }

  changed() {
    for (const fn of this.listeners) fn();
  }

  startNew() {
    const id = store.newId("conv");
    this.head = {
      id,
      title: "",
      titleSource: "",
      headResponseId: null,
      pendingResponseId: null,
      containerId: null,
      createdAt: Date.now(),
      saved: false,
    };
    this.local = new LocalState(id, store.blankLocal());
    store.setCurrentConversationId(id);
    this.changed();
  }

  /** Open a listed conversation; false if it is not (any more). */
  open(id) {
    const head = store.getConversation(id);
    if (!head) return false;
    // Heads saved before titles had sources: "Notebook" was the name of any notebook.
    const titleSource = head.titleSource ?? (head.title && head.title !== "Notebook" ? "message" : "auto");
    this.head = { ...head, titleSource, saved: true };
    this.local = new LocalState(id);
    store.setCurrentConversationId(id);
    this.changed();
    return true;
  }

  /** A new chat with only a draft in it is not listed; a reload keeps its draft. */
  adoptUnlistedDraft() {
    const id = store.currentConversationId();
    if (!id || store.getConversation(id)) return;
    const local = new LocalState(id);
    if (!local.draft && !local.pending.length) return;
    this.head.id = id;
    this.local = local;
    store.setCurrentConversationId(id);
  }

  lastOpenedId() {
    return store.currentConversationId();
  }

  /** Save the head: the conversation is listed from now on. */
  save() {
    const head = this.head;
    if (!head.title) this.setTitle(untitled(), "auto");
    head.saved = true;
    store.saveConversation(head);
    store.setCurrentConversationId(head.id);
    this.changed();
  }

  /** Save the head of ``head`` (which may no longer be the open one) quietly. */
  saveHead(head = this.head) {
    if (head.saved) store.saveConversation(head);
  }

  /**
   * Title the conversation from ``text``. Sources rank user > message > cell > auto: a
   * name the person gave is never replaced, the first message replaces a title made
   * from a cell. Titles are kept distinct: a repeat gets " (2)".
   */
  setTitle(text, source) {
    const rank = { "": 0, auto: 1, cell: 2, message: 3, user: 4 };
    const head = this.head;
    if (!text.trim() && source !== "auto") return;
    if (source !== "user" && rank[head.titleSource ?? ""] >= rank[source]) return;
    const base = text.replace(/\s+/g, " ").trim().slice(0, TITLE_CHARS) || untitled();
    head.title = source === "user" ? base : this.distinctTitle(base, head.id);
    head.titleSource = source;
    if (head.saved) {
      store.saveConversation(head);
      this.changed();
    }
  }

  distinctTitle(base, ownId) {
    const taken = new Set(store.listConversations().filter((c) => c.id !== ownId).map((c) => c.title));
    if (!taken.has(base)) return base;
    for (let n = 2; ; n += 1) if (!taken.has(`${base} (${n})`)) return `${base} (${n})`;
  }

  rename(id, title) {
    const clean = title.replace(/\s+/g, " ").trim().slice(0, 120);
    if (!clean) return;
    if (this.head?.id === id) {
      this.setTitle(clean, "user");
      return;
    }
    const head = store.getConversation(id);
    if (!head) return;
    store.saveConversation({ ...head, title: clean, titleSource: "user" });
    this.changed();
  }

  /** Listed conversations, most recent first, whose title holds ``query``. */
  list(query = "") {
    const needle = query.trim().toLowerCase();
    const heads = store.listConversations();
    return needle ? heads.filter((h) => (h.title ?? "").toLowerCase().includes(needle)) : heads;
  }

  /** Forget a conversation; returns what ``restore`` needs to bring it back. */
  remove(id) {
    const head = store.getConversation(id);
    if (!head) return null;
    if (this.head?.id === id) this.local.save();
    const removed = { head, local: store.readLocalRaw(id) };
    store.forgetConversation(id);
    this.changed();
    return removed;
  }

  restore(removed) {
    store.writeLocalRaw(removed.head.id, removed.local);
    store.saveConversation(removed.head);
    this.changed();
  }

  /** The stored turns, oldest first: ``[{response, inputs}]``. */
  async loadChain() {
    const head = this.head;
    if (head.pendingResponseId) {
      // A turn was streaming when the page went away: the service kept what it had.
      try {
        const pending = await responses.retrieve(head.pendingResponseId);
        if (!isRunning(pending)) {
          head.headResponseId = pending.id;
          head.pendingResponseId = null;
        }
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        head.pendingResponseId = null; // it never reached the store
      }
      this.saveHead(head);
    }
    const chain = [];
    let id = head.pendingResponseId || head.headResponseId;
    for (let depth = 0; id && depth < 500; depth += 1) {
      const [response, inputs] = await Promise.all([responses.retrieve(id), responses.inputItems(id)]);
      chain.unshift({ response, inputs });
      id = response.previous_response_id;
    }
    return chain;
  }
}

export function isRunning(response) {
  return response?.status === "in_progress" || response?.status === "queued";
}

function untitled() {
  return "Untitled notebook";
}
