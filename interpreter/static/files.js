// The files panel: what is in the container's /mnt/data (files the code wrote too),
// with download links and deletion; uploads by choosing or dropping files anywhere.
// An upload also becomes an attachment of the next message: it shows above the
// message box until sent, then in the message that sent it.

import { ApiError, containers } from "./api.js";
import { $, button, confirmDialog, el, formatBytes, announce } from "./ui.js";

export class FilesPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.files = [];
    $("refresh-files").addEventListener("click", () => this.refresh());
    $("file-input").addEventListener("change", (event) => {
      this.upload(event.target.files);
      event.target.value = "";
    });
    $("attach-file").addEventListener("click", () => $("file-input").click());
    this.setUpDragAndDrop();
  }

  get head() {
    return this.ctx.store.head;
  }

  findByPath(path) {
    return this.files.find((file) => file.path === path) ?? null;
  }

  reset() {
    this.files = [];
    $("upload-status").textContent = "";
    this.render();
    this.renderPending();
  }

  async refresh() {
    const head = this.head;
    if (!this.ctx.container.usable) {
      this.files = [];
      this.render();
      return;
    }
    try {
      const files = await containers.listFiles(head.containerId);
      if (head !== this.head) return;
      this.files = files;
    } catch (error) {
      if (head !== this.head) return;
      if (error instanceof ApiError && error.containerGone) this.ctx.container.gone(error);
      else this.ctx.report(error);
    }
    this.render();
  }

  render() {
    const list = $("file-list");
    list.replaceChildren();
    const head = this.head;
    if (!head?.containerId) {
      list.append(el("li", "muted", "No container yet: adding a file starts one."));
      return;
    }
    if (["expired", "gone"].includes(this.ctx.container.state)) {
      list.append(el("li", "muted", "The container is gone, and its files with it."));
      return;
    }
    if (!this.files.length) {
      list.append(el("li", "muted", "No files yet."));
      return;
    }
    const sorted = [...this.files].sort((a, b) => a.path.localeCompare(b.path));
    for (const file of sorted) {
      const name = file.path.replace(/^\/mnt\/data\//, "");
      const item = el("li", "file-item");
      const link = el("a", "file-name", name);
      link.href = containers.fileUrl(head.containerId, file.id);
      link.download = name.split("/").pop();
      link.title = `Download ${file.path}`;
      const size = el("span", "file-size", formatBytes(file.bytes));
      const remove = button("✕", "file-remove", () => this.remove(file), { label: `Delete ${name}` });
      item.append(link, size, remove);
      list.append(item);
    }
  }

  async remove(file) {
    const head = this.head;
    const name = file.path.replace(/^\/mnt\/data\//, "");
    const sure = await confirmDialog({
      title: `Delete ${name}?`,
      body: `It is removed from ${file.path} in the container; code that reads it will fail.`,
      confirm: "Delete",
    });
    if (!sure || head !== this.head) return;
    try {
      await containers.deleteFile(head.containerId, file.id);
      announce(`Deleted ${name}.`);
    } catch (error) {
      $("upload-status").textContent = `Could not delete ${name}: ${this.ctx.report(error)}`;
    }
    await this.refresh();
    $("refresh-files").focus();
  }

  async upload(fileList) {
    const files = [...fileList];
    if (!files.length) return;
    const status = $("upload-status");
    const local = this.ctx.store.local;
    let containerId;
    try {
      containerId = await this.ctx.container.ensure();
    } catch (error) {
      status.textContent = `Could not upload: ${this.ctx.report(error, "container")}`;
      return;
    }
    const done = [];
    for (const file of files) {
      status.textContent = `Uploading ${file.name}…`;
      try {
        const record = await containers.upload(containerId, file);
        done.push(record.path);
        local.pending = local.pending.filter((p) => p.path !== record.path);
        local.pending.push({ name: record.path.split("/").pop(), path: record.path, bytes: record.bytes });
        local.save();
        if (local === this.ctx.store.local) this.renderPending();
      } catch (error) {
        status.textContent = `Could not upload ${file.name}: ${this.ctx.report(error, "container")}`;
        await this.refresh();
        return;
      }
    }
    status.textContent = `Uploaded to ${done.join(", ")}`;
    announce(status.textContent);
    await this.refresh();
    this.ctx.variables.refresh();
  }

  /** The uploads waiting for the next message, as chips above the message box. */
  renderPending() {
    const holder = $("composer-attachments");
    holder.replaceChildren();
    const pending = this.ctx.store.local?.pending ?? [];
    holder.hidden = pending.length === 0;
    for (const file of pending) {
      const chip = el("li", "attachment");
      chip.append(el("span", "", file.name));
      chip.title = `${file.path} (${formatBytes(file.bytes)}), goes with your next message`;
      chip.append(
        button("", "attachment-remove", () => {
          const local = this.ctx.store.local;
          local.pending = local.pending.filter((p) => p.path !== file.path);
          local.save();
          this.renderPending();
          $("composer-input").focus();
        }, { label: `Remove ${file.name} from the next message` }),
      );
      holder.append(chip);
    }
  }

  /** The attachments for a message being sent now (they leave the message box). */
  takePending() {
    const local = this.ctx.store.local;
    const pending = local.pending;
    local.pending = [];
    local.save();
    this.renderPending();
    return pending;
  }

  setUpDragAndDrop() {
    const overlay = $("drop-overlay");
    let depth = 0;
    const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
    window.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      depth += 1;
      overlay.hidden = false;
    });
    window.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) overlay.hidden = true;
    });
    window.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    window.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      overlay.hidden = true;
      this.upload(event.dataTransfer.files);
    });
  }
}
