// The container bar: the conversation's container (started on first use), its status,
// the idle time it has left, its memory; interrupting and restarting its kernel;
// downloading the conversation as a notebook; and what happens when it is gone. In narrow windows the details fold into a popover
// behind the status.

import { ApiError, containers, notebooks } from "./api.js";
import { newId } from "./store.js";
import {
  $,
  announce,
  confirmDialog,
  formatDuration,
  formatMemory,
  hideBanner,
  showBanner,
  toast,
} from "./ui.js";

const INTERRUPT_RETRIES = 3;
const INTERRUPT_RETRY_MS = 1_000;

export class ContainerBar {
  constructor(ctx) {
    this.ctx = ctx;
    this.container = null; // the last container object the service gave
    this.state = "none"; // none | starting | running | expired | gone | unknown
    this.clockOffsetMs = 0; // server clock minus ours, from the Date header
    this.refreshing = null;
    $("interrupt-kernel").addEventListener("click", () => this.interrupt());
    $("restart-kernel").addEventListener("click", () => this.restart());
    $("run-all").addEventListener("click", () => ctx.notebook.runAll());
    $("download-notebook").addEventListener("click", () => this.downloadNotebook());
    const summary = $("container-summary");
    summary.addEventListener("click", () => this.toggleDetails());
    setInterval(() => this.renderIdle(), 1000);
  }

  get head() {
    return this.ctx.store.head;
  }

  get usable() {
    return Boolean(this.head?.containerId) && !["expired", "gone"].includes(this.state);
  }

  /** Forget the last conversation's container (another one is opening). */
  reset(known = false) {
    this.container = null;
    this.state = known ? "unknown" : "none";
    hideBanner("container");
    this.render();
  }

  /** The conversation's container id, starting one if it has none yet. */
  async ensure() {
    const head = this.head;
    if (head.containerId && !this.usable) {
      throw new Error("This conversation's container is gone: start a new one from the message above.");
    }
    if (head.containerId) return head.containerId;
    if (this.starting) return this.starting;
    this.state = "starting";
    this.render();
    this.starting = (async () => {
      try {
        const name = head.titleSource === "message" || head.titleSource === "user" ? head.title.slice(0, 60) : "notebook";
        const container = await containers.create(name);
        if (head === this.head) this.adopt(container.id, container);
        return container.id;
      } catch (error) {
        this.state = "none";
        this.render();
        throw error;
      } finally {
        this.starting = null;
      }
    })();
    return this.starting;
  }

  adopt(id, container = null) {
    const head = this.head;
    if (head.containerId !== id) {
      head.containerId = id;
      if (!head.saved) this.ctx.store.save();
      else this.ctx.store.saveHead();
      this.container = null;
      this.state = "unknown"; // until the refresh below says
    }
    if (container) {
      this.container = container;
      this.state = "running";
    }
    hideBanner("container");
    this.render();
    this.refresh();
    this.ctx.files.refresh();
  }

  async startNew() {
    this.head.containerId = null;
    this.state = "none";
    this.container = null;
    try {
      await this.ensure();
      announce("A new container is running.");
      this.ctx.files.refresh();
      this.ctx.variables.refresh();
    } catch (error) {
      const message = this.ctx.report(error);
      showBanner("container", `Could not start a container: ${message}`, [["Try again", () => this.startNew(), true]]);
    }
  }

  /** The container is gone for good: say so, and offer a new one. */
  gone(error) {
    const expired = error?.code === "container_expired";
    const minutes = this.container?.expires_after?.minutes ?? 20;
    this.state = expired ? "expired" : "gone";
    showBanner(
      "container",
      expired
        ? `This conversation's container expired after ${minutes} idle minutes: its variables and files are gone. Start a new one to keep working; your cells stay here to run again.`
        : "This conversation's container no longer exists (the service may have been reset). Start a new one to keep working.",
      [["Start a new container", () => this.startNew(), true]],
    );
    this.render();
    this.ctx.files.render();
    this.ctx.variables.render();
  }

  async refresh() {
    const head = this.head;
    if (!head?.containerId) {
      this.render();
      return;
    }
    if (this.refreshing) return this.refreshing;
    this.refreshing = (async () => {
      try {
        const { body, date } = await containers.retrieve(head.containerId);
        if (head !== this.head || body.id !== head.containerId) return;
        this.container = body;
        this.state = body.status === "running" ? "running" : body.status;
        if (date) this.clockOffsetMs = Date.parse(date) - Date.now();
        this.ctx.serviceAnswered();
        hideBanner("container");
      } catch (error) {
        if (head !== this.head) return;
        if (error instanceof ApiError && error.containerGone) this.gone(error);
        else this.ctx.report(error);
      } finally {
        this.refreshing = null;
        this.render();
      }
    })();
    return this.refreshing;
  }

  busy() {
    return this.ctx.notebook.busy() || this.ctx.chat.busy;
  }

  render() {
    const head = this.head;
    const status = $("container-status");
    const id = $("container-id");
    id.textContent = head?.containerId ?? "none yet";
    id.title = head?.containerId ?? "A container starts when code first runs or a file is added.";
    let shown = this.state;
    if (this.ctx.unreachable && head?.containerId) shown = "unknown";
    const busy = this.busy();
    const labels = {
      none: "not started",
      starting: "starting…",
      running: busy ? "busy" : "running",
      expired: "expired",
      gone: "gone",
      unknown: "unknown",
    };
    status.dataset.status = shown === "running" && busy ? "busy" : shown;
    status.textContent = labels[shown] ?? shown;
    $("container-memory").textContent = formatMemory(this.container?.memory_limit);
    this.renderIdle();
    const live = Boolean(head?.containerId) && this.state === "running";
    $("interrupt-kernel").disabled = !live;
    $("restart-kernel").disabled = !live;
  }

  renderIdle() {
    const node = $("container-idle");
    const short = $("container-idle-short");
    const container = this.container;
    if (!container || this.state !== "running" || this.ctx.unreachable) {
      node.textContent = this.state === "expired" ? "0:00" : "–";
      short.textContent = "";
      return;
    }
    const total = (container.expires_after?.minutes ?? 20) * 60;
    const totalText = formatDuration(total);
    if (this.busy()) {
      node.textContent = `${totalText} of ${totalText} (in use)`;
      short.textContent = "";
      return;
    }
    const now = (Date.now() + this.clockOffsetMs) / 1000;
    const left = Math.max(0, container.last_active_at + total - now);
    node.textContent = `${formatDuration(Math.min(left, total))} of ${totalText}`;
    short.textContent = formatDuration(Math.min(left, total));
  }

  toggleDetails(open) {
    const details = $("container-details");
    const show = open ?? !details.classList.contains("open");
    details.classList.toggle("open", show);
    $("container-summary").setAttribute("aria-expanded", String(show));
    if (show) details.querySelector("button:not(:disabled)")?.focus();
  }

  /** Interrupt the kernel. An interrupt that lands before the kernel has begun the code
   * (a click right after Run) is lost, so it is sent again while the cell still runs. */
  async interrupt(cell = null) {
    const head = this.head;
    const id = head?.containerId;
    if (!id) return;
    const notebook = this.ctx.notebook;
    const stillRunning = () =>
      this.head === head && (cell ? cell.state === "running" : notebook.busy() || this.ctx.chat.busy);
    try {
      await containers.interrupt(id);
      announce("Interrupt sent.");
      for (let attempt = 0; attempt < INTERRUPT_RETRIES; attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, INTERRUPT_RETRY_MS));
        if (!stillRunning()) return;
        await containers.interrupt(id);
      }
    } catch (error) {
      this.ctx.report(error, "container");
    }
  }

  /** Save the conversation as a .ipynb: the service writes it from the stored turns
   * (prompts and answers as Markdown between the code); cells run by hand since the
   * last message, which the service learns of only with the next one, go at the end.
   * A conversation without a message yet is what ran in its container. */
  async downloadNotebook() {
    const head = this.head;
    try {
      let notebook;
      if (head?.headResponseId) {
        notebook = await notebooks.ofResponse(head.headResponseId);
        notebook.cells.push(...this.ctx.notebook.unsentRunItems().map(handRunCell));
      } else if (head?.containerId) {
        notebook = await notebooks.ofContainer(head.containerId);
      } else {
        toast("Nothing to download yet: send a message or run a cell.");
        return;
      }
      const blob = new Blob([JSON.stringify(notebook, null, 1)], { type: "application/x-ipynb+json" });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `${(head.title || "notebook").replace(/[^\w.-]+/g, "_").slice(0, 60)}.ipynb`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      announce("The notebook was downloaded.");
    } catch (error) {
      toast(`Could not download the notebook: ${this.ctx.report(error, "container")}`);
    }
  }

  /** Restart the kernel, after asking. */
  async restart() {
    const id = this.head?.containerId;
    if (!id) return;
    const sure = await confirmDialog({
      title: "Restart the kernel?",
      body: "Variables and imports are lost. Files in /mnt/data stay.",
      confirm: "Restart",
    });
    if (!sure || id !== this.head?.containerId) return;
    $("restart-kernel").disabled = true;
    try {
      await containers.restart(id);
      announce("The kernel restarted: variables are cleared.");
      toast("Kernel restarted: variables are cleared, files are kept.");
    } catch (error) {
      toast(`Could not restart: ${this.ctx.report(error, "container")}`);
    } finally {
      this.render();
      this.refresh();
      this.ctx.variables.refresh();
    }
  }
}

/** A code cell (nbformat v4) for a run the service has not been told of yet. */
function handRunCell(run) {
  const logs = run.outputs?.find((output) => output.type === "logs")?.logs ?? "";
  return {
    cell_type: "code",
    id: newId("cell"),
    metadata: {},
    execution_count: null,
    source: run.code,
    outputs: logs ? [{ output_type: "stream", name: "stdout", text: logs }] : [],
  };
}
