// The variable inspector: the kernel's variables (name, type, shape or length, a short
// value), read by GET /v1/containers/{id}/variables, which asks the kernel silently and
// leaves its execution count alone. It is refreshed whenever the kernel may have
// changed; while code runs the kernel is not asked (the service would refuse), and the
// list catches up when it is idle again.

import { ApiError, containers } from "./api.js";
import { $, el } from "./ui.js";

export class VariablesPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.variables = [];
    this.note = "";
    this.loading = null;
    this.again = false;
    $("refresh-variables").addEventListener("click", () => this.refresh());
  }

  reset() {
    this.variables = [];
    this.note = "";
    this.render();
  }

  /**
   * Read the variables again; resolves to the kernel's last execution count (null if it
   * could not be asked now).
   */
  async refresh() {
    if (this.loading) {
      this.again = true; // the kernel changed while asking: ask once more after
      return this.loading;
    }
    this.loading = this.load();
    try {
      return await this.loading;
    } finally {
      this.loading = null;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    }
  }

  async load() {
    const head = this.ctx.store.head;
    if (!this.ctx.container.usable) {
      this.variables = [];
      this.note = "";
      this.render();
      return null;
    }
    try {
      const body = await containers.variables(head.containerId);
      if (head !== this.ctx.store.head) return null;
      this.variables = body.variables;
      this.note = body.truncated ? "Only the first variables are listed." : "";
      this.render();
      return body.execution_count;
    } catch (error) {
      if (head !== this.ctx.store.head) return null;
      if (error instanceof ApiError && error.kernelBusy) {
        this.note = "Code is running: the list updates when it ends.";
        this.render();
        this.ctx.notebook.whenIdle().then(() => this.refresh());
      } else if (error instanceof ApiError && error.containerGone) {
        this.ctx.container.gone(error);
      } else {
        this.note = `Could not read the variables: ${this.ctx.report(error)}`;
        this.render();
      }
      return null;
    }
  }

  render() {
    const holder = $("variable-list");
    holder.replaceChildren();
    $("variables-note").textContent = this.note;
    if (!this.ctx.container.usable) {
      holder.append(el("p", "muted small", "Variables show here once code has run."));
      return;
    }
    if (!this.variables.length) {
      holder.append(el("p", "muted small", "No variables yet."));
      return;
    }
    const table = el("table", "variables");
    const head = el("thead");
    const row = el("tr");
    for (const title of ["Name", "Type", "Shape", "Value"]) {
      const th = el("th", "", title);
      th.scope = "col";
      row.append(th);
    }
    head.append(row);
    const body = el("tbody");
    for (const variable of this.variables) {
      const tr = el("tr");
      const name = el("th", "var-name", variable.name);
      name.scope = "row";
      const type = el("td", "var-type", variable.type);
      type.title = `${variable.module}.${variable.type}`;
      tr.append(name, type, el("td", "var-shape", shapeOf(variable)), el("td", "var-value", valueOf(variable)));
      body.append(tr);
    }
    table.append(head, body);
    holder.append(table);
  }
}

function shapeOf(variable) {
  if (variable.shape) return variable.shape.length ? variable.shape.join(" × ") : "scalar";
  if (variable.length != null) return `${variable.length}`;
  return "";
}

function valueOf(variable) {
  if (variable.value != null) return variable.value;
  return variable.dtype ?? "";
}
