// The notebook: its entries in order (model turns, and cells written by hand between
// them), which cell is selected, inserting, moving and deleting cells, and running
// them. Runs go through one queue, as a Jupyter kernel takes them: one at a time, the
// rest shown as waiting, and the rest dropped after an error. A model's call that
// arrives while a hand-run cell runs waits too, and says so.
//
// Where a hand cell sits is kept as the response it follows ("after"); the order of
// the records in the conversation's local state is the order on the page.

import { containers } from "./api.js";
import { Cell } from "./cells.js";
import { logsOf } from "./outputs.js";
import { newId } from "./store.js";
import { $, announce, hideToast, toast } from "./ui.js";

// What the model is told of one run by hand: this many characters of its output at most.
const MAX_RUN_LOGS_CHARS = 4000;

export class Notebook {
  constructor(ctx) {
    this.ctx = ctx;
    this.entries = $("entries");
    this.cells = new Map(); // key -> Cell
    this.selected = null;
    this.queue = []; // {cell, head, local}, waiting to run
    this.running = null; // the hand-run cell now running
    this.modelRunning = new Set(); // the model's calls that the service runs (or will)
    this.deleted = []; // deleted hand cells, for undo (Z)
    this.idleWaiters = [];
    this.countsThisTurn = []; // execution counts of hand runs during a model turn
    this.actions = {
      run: (cell) => this.run(cell),
      interrupt: (cell) => this.interrupt(cell),
      remove: (cell) => this.remove(cell),
      move: (cell, step) => this.move(cell, step),
      select: (cell) => this.select(cell),
      changed: (cell, what) => this.changed(cell, what),
    };
  }

  get store() {
    return this.ctx.store;
  }

  // -- entries ------------------------------------------------------------------------------

  reset() {
    for (const job of this.queue) job.cell.setState("idle");
    this.queue = [];
    this.modelRunning.clear();
    this.cells.clear();
    this.selected = null;
    this.deleted = [];
    this.entries.replaceChildren();
    this.updateEmpty();
  }

  append(node) {
    this.entries.append(node);
    this.updateEmpty();
  }

  updateEmpty() {
    $("empty-state").hidden = this.entries.children.length > 0;
  }

  /** Every cell, top to bottom (the model's inside their turns too). */
  allCells() {
    return [...this.entries.querySelectorAll(".cell")].map((node) => this.cells.get(node.dataset.key)).filter(Boolean);
  }

  /** The entry (a hand cell, or the turn holding a model cell) a cell belongs to. */
  entryOf(cell) {
    return cell.element.parentElement === this.entries ? cell.element : cell.element.closest(".turn");
  }

  // -- making cells ----------------------------------------------------------------------------

  handCell(record) {
    const cell = new Cell(
      {
        origin: "hand",
        kind: record.kind ?? "code",
        key: record.key,
        code: record.code,
        outputs: record.outputs,
        executionCount: record.executionCount,
        notice: record.notice ?? "",
        rendered: record.rendered,
        collapsed: record.collapsed,
      },
      this.actions,
    );
    this.cells.set(record.key, cell);
    return cell;
  }

  modelCell(item) {
    const local = this.store.local;
    const edit = local.edits[item.id];
    const cell = new Cell(
      {
        origin: "model",
        key: item.id,
        code: edit?.code ?? item.code ?? "",
        outputs: edit?.outputs ?? [],
        executionCount: edit?.executionCount ?? local.counts[item.id] ?? null,
        notice: edit?.notice ?? "",
        collapsed: local.collapsed[item.id],
      },
      this.actions,
    );
    cell.edited = Boolean(edit);
    cell.element.classList.toggle("is-edited", cell.edited);
    this.cells.set(item.id, cell);
    return cell;
  }

  /** Show where the model's call ``item`` is: written, running, done. */
  showModelCall(cell, item) {
    if (!cell.edited && typeof item.code === "string" && item.code !== cell.code) cell.setCode(item.code);
    if (item.status === "in_progress") {
      cell.setState("writing");
    } else if (item.status === "interpreting") {
      if (!this.modelRunning.has(cell)) {
        this.modelRunning.add(cell);
        cell.setState(this.running ? "queued" : "running", { cancellable: false });
      }
    } else {
      if (!cell.edited) cell.output.setAll(item.outputs ?? []);
      cell.markRan();
      cell.callStatus = item.status;
      if (item.status === "failed") cell.setNotice("This call failed.");
      else if (item.status === "incomplete") cell.setNotice("This call did not finish.");
      if (cell.state !== "idle" && !this.isHandRun(cell)) cell.setState("idle");
      if (this.modelRunning.delete(cell)) this.pump();
    }
  }

  isHandRun(cell) {
    return this.running === cell || this.queue.some((job) => job.cell === cell);
  }

  /**
   * Number the model's cells of one turn, from the kernel's count after it: the last
   * ran as ``count``, the one before as ``count - 1``, skipping the numbers of cells run
   * by hand meanwhile. A call that did not complete (the kernel may have restarted)
   * stops the counting back.
   */
  numberModelCells(cells, count, handCounts) {
    if (count == null) return;
    const taken = new Set(handCounts);
    let n = count;
    const local = this.store.local;
    for (const cell of [...cells].reverse()) {
      if (cell.callStatus !== "completed" || n < 1) break;
      while (taken.has(n)) n -= 1;
      if (!cell.edited) {
        cell.setExecutionCount(n);
        local.counts[cell.key] = n;
      }
      n -= 1;
    }
    local.save();
  }

  /** A new hand cell: ``where`` is "end", or {before: cell} / {after: cell}. */
  addCell({ kind = "code", code = "", where = "end", edit = true } = {}) {
    const record = { key: newId("cell"), kind, after: null, code, outputs: [], executionCount: null };
    this.store.local.handCells.push(record);
    if (!this.store.head.saved) this.store.save();
    const cell = this.handCell(record);
    if (where === "end") this.append(cell.element);
    else if (where.before) this.entryOf(where.before).before(cell.element);
    else this.entryOf(where.after).after(cell.element);
    this.updateEmpty();
    this.syncHandCells();
    this.select(cell);
    if (edit) cell.edit();
    else cell.command();
    cell.element.scrollIntoView({ block: "nearest" });
    return cell;
  }

  /** Place the conversation's hand cells: those after ``anchor`` ("" for the start). */
  placeHandCells(records) {
    for (const record of records) this.append(this.handCell(record).element);
  }

  /** Read the hand cells' order and places back from the page into the local state
   * (the page holds every hand cell of the open conversation). */
  syncHandCells(local = this.store.local) {
    const byKey = new Map(local.handCells.map((record) => [record.key, record]));
    const ordered = [];
    let anchor = null;
    for (const node of this.entries.children) {
      if (node.classList.contains("turn")) {
        anchor = node.dataset.responseId ?? anchor;
        continue;
      }
      const record = byKey.get(node.dataset.key);
      if (record) {
        record.after = anchor;
        ordered.push(record);
      }
    }
    local.handCells = ordered;
    local.save();
  }

  // -- selection and modes ---------------------------------------------------------------------

  select(cell) {
    if (this.selected === cell) return;
    this.selected?.setSelected(false);
    this.selected = cell;
    cell?.setSelected(true);
  }

  /** Command mode on ``cell`` (the selected one by default). */
  command(cell = this.selected) {
    if (!cell) return;
    this.select(cell);
    cell.command();
  }

  edit(cell = this.selected) {
    if (!cell) return;
    this.select(cell);
    cell.edit();
  }

  neighbour(cell, step) {
    const all = this.allCells();
    const index = all.indexOf(cell);
    return index < 0 ? null : all[index + step] ?? null;
  }

  lastCell() {
    return this.allCells().at(-1) ?? null;
  }

  // -- changing cells ------------------------------------------------------------------------

  changed(cell, what) {
    if (cell.origin === "model" && what === "code") {
      cell.edited = true;
      cell.element.classList.add("is-edited");
    }
    this.persist(cell, this.store.local, what === "code" ? 300 : 0);
  }

  /** Save a cell's code and outputs with its conversation's local state (which may no
   * longer be the open one, when a run ends after a switch). */
  persist(cell, local, delayMs = 0) {
    if (cell.origin === "hand") {
      const record = local.handCells.find((r) => r.key === cell.key);
      if (!record) return;
      Object.assign(record, {
        kind: cell.kind,
        code: cell.code,
        outputs: cell.outputs,
        executionCount: cell.executionCount,
        notice: cell.notice,
        rendered: cell.rendered,
        collapsed: { ...cell.collapsed },
      });
    } else {
      if (cell.edited) {
        local.edits[cell.key] = {
          code: cell.code,
          outputs: cell.outputs,
          executionCount: cell.executionCount,
          notice: cell.notice,
        };
      }
      local.collapsed[cell.key] = { ...cell.collapsed };
    }
    local.save(delayMs);
  }

  move(cell, step) {
    if (cell.origin !== "hand") return;
    const node = cell.element;
    const other = step < 0 ? node.previousElementSibling : node.nextElementSibling;
    if (!other) return;
    if (step < 0) other.before(node);
    else other.after(node);
    this.syncHandCells();
    node.scrollIntoView({ block: "nearest" });
    announce(step < 0 ? "Moved up." : "Moved down.");
  }

  remove(cell) {
    if (cell.origin !== "hand") {
      announce("The model's cells stay: they are part of the conversation.");
      toast("The model's cells cannot be deleted; collapse them instead (O).");
      return;
    }
    if (cell.state !== "idle") return;
    const local = this.store.local;
    const record = local.handCells.find((r) => r.key === cell.key);
    const wasCommand = document.activeElement === cell.element;
    const after = this.neighbour(cell, 1) ?? this.neighbour(cell, -1);
    this.deleted.push({
      record: structuredClone(record ?? {}),
      next: cell.element.nextElementSibling,
      previous: cell.element.previousElementSibling,
    });
    cell.element.remove();
    this.cells.delete(cell.key);
    if (this.selected === cell) this.selected = null;
    this.syncHandCells();
    this.updateEmpty();
    if (after) {
      if (wasCommand) this.command(after);
      else this.select(after);
    } else {
      $("composer-input").focus();
    }
    toast("Cell deleted.", { action: ["Undo", () => this.undoDelete()], ms: 8000 });
  }

  undoDelete() {
    const last = this.deleted.pop();
    if (!last?.record?.key) return;
    hideToast();
    this.store.local.handCells.push(last.record);
    const cell = this.handCell(last.record);
    if (last.next?.isConnected && last.next.parentElement === this.entries) last.next.before(cell.element);
    else if (last.previous?.isConnected && last.previous.parentElement === this.entries) last.previous.after(cell.element);
    else this.append(cell.element);
    this.updateEmpty();
    this.syncHandCells();
    this.command(cell);
    announce("Cell restored.");
  }

  // -- running ---------------------------------------------------------------------------------

  busy() {
    return Boolean(this.running) || this.queue.length > 0 || this.modelRunning.size > 0;
  }

  /** Queue ``cell`` to run (a Markdown cell just renders). */
  run(cell) {
    if (cell.kind === "markdown") {
      cell.renderMarkdownView();
      this.persist(cell, this.store.local);
      return;
    }
    if (cell.state !== "idle") return;
    cell.setState("queued");
    this.queue.push({ cell, head: this.store.head, local: this.store.local });
    this.ctx.container.render();
    this.pump();
  }

  /** Run every code cell from the top, in order; Markdown cells render. */
  runAll() {
    for (const cell of this.allCells()) this.run(cell);
    announce("Running all cells.");
  }

  async pump() {
    if (this.running) return;
    if (this.modelRunning.size) {
      // The model's call holds the kernel next (the service queues it first).
      for (const cell of this.modelRunning) if (cell.state === "queued") cell.setState("running");
      return;
    }
    const job = this.queue.shift();
    if (!job) {
      this.ctx.container.render();
      for (const waiter of this.idleWaiters.splice(0)) waiter();
      return;
    }
    this.running = job.cell;
    let status = "error";
    try {
      status = await this.execute(job);
    } finally {
      if (this.running === job.cell) this.running = null;
    }
    if (status !== "ok") this.dropQueue("Not run: a cell above it failed.");
    this.pump();
  }

  /** Resolves when no cell runs or waits (at once if none does). */
  whenIdle() {
    if (!this.busy()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  dropQueue(notice) {
    for (const job of this.queue.splice(0)) {
      job.cell.setState("idle");
      job.cell.setNotice(notice);
    }
  }

  async execute({ cell, head, local }) {
    const ctx = this.ctx;
    let containerId;
    try {
      containerId = await ctx.container.ensure();
    } catch (error) {
      cell.setState("idle");
      cell.setNotice(ctx.report(error, "container"));
      return "error";
    }
    if (head !== this.store.head) {
      cell.setState("idle");
      return "switched";
    }
    if (cell.origin === "model" && !cell.edited) {
      cell.edited = true; // its outputs are now the person's run, not the model's
      cell.element.classList.add("is-edited");
    }
    // The old outputs stay, dimmed, until the new ones come: if the run never starts
    // (the service is down), nothing is lost.
    let fresh = false;
    const startFresh = () => {
      if (!fresh) cell.output.clear();
      fresh = true;
    };
    cell.output.element.classList.add("is-stale");
    cell.setNotice("");
    cell.setState("running");
    ctx.container.render();
    const code = cell.code;
    let status = "error";
    try {
      const summary = await containers.execute(containerId, code, (output) => {
        startFresh();
        cell.output.add(output);
      });
      startFresh();
      status = summary.status;
      cell.setExecutionCount(summary.execution_count);
      if (summary.execution_count != null) this.countsThisTurn.push(summary.execution_count);
      cell.setNotice(executionNotice(summary));
      local.unsent.push({ id: newId("ci"), code, logs: clip(logsOf(cell.outputs)), container_id: containerId });
      if (head === this.store.head) this.store.setTitle(firstLine(code), "cell");
      announce(summary.status === "ok" ? "Cell finished." : `Cell ended: ${summary.status}.`);
    } catch (error) {
      cell.setNotice(ctx.report(error, "container"));
    } finally {
      cell.output.element.classList.remove("is-stale");
      cell.setState("idle");
      this.persist(cell, local);
      if (head === this.store.head) ctx.kernelChanged();
    }
    return status;
  }

  /** Interrupt (or, for one still waiting, take it out of the queue). */
  interrupt(cell) {
    const index = this.queue.findIndex((job) => job.cell === cell);
    if (index >= 0) {
      this.queue.splice(index, 1);
      cell.setState("idle");
      announce("Taken out of the queue.");
      this.ctx.container.render();
      return;
    }
    this.ctx.container.interrupt(cell);
  }

  /** Runs by hand since the model last answered, as Responses input items (oldest
   * first): the model is told what the person ran. */
  unsentRunItems() {
    return this.store.local.unsent.map((run) => ({
      type: "code_interpreter_call",
      id: run.id,
      code: run.code,
      container_id: run.container_id,
      status: "completed",
      outputs: [{ type: "logs", logs: run.logs }],
    }));
  }
}

function executionNotice(summary) {
  const notes = [];
  if (summary.status === "timeout") notes.push("Stopped: the cell ran past its time limit; variables are kept.");
  if (summary.status === "died") notes.push("The kernel died (out of memory?) and was restarted: earlier variables are gone.");
  if (summary.notice) notes.push(summary.notice);
  else if (summary.kernel_restarted && summary.status !== "died") notes.push("The kernel had restarted before this ran: earlier variables are gone.");
  if (summary.truncated) notes.push("Output was cut because it was too long.");
  return notes.join(" ");
}

function clip(text) {
  if (text.length <= MAX_RUN_LOGS_CHARS) return text;
  const half = MAX_RUN_LOGS_CHARS / 2;
  return `${text.slice(0, half)}\n[... ${text.length - 2 * half} characters omitted ...]\n${text.slice(-half)}`;
}

function firstLine(code) {
  return code.split("\n").find((line) => line.trim() && !line.trim().startsWith("#"))?.trim() ?? "";
}
