// The service's HTTP API as the page uses it: the Containers API (plus our execute,
// interrupt, restart, complete, inspect and variables), notebooks out, and the Responses API, with server-sent events read from
// fetch streams. Errors come back as ApiError (the service answered) or
// ServiceUnreachable (it did not).

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message || `The service answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.code = error.code ?? null;
    this.type = error.type ?? null;
  }

  /** The container is gone for good: expired after idling, or unknown to the service. */
  get containerGone() {
    return this.status === 404 && (this.code === "container_expired" || this.code === "not_found");
  }

  /** The kernel is running code (or did not answer a quick question in time). */
  get kernelBusy() {
    return this.status === 409 && this.code === "kernel_busy";
  }
}

export class ServiceUnreachable extends Error {
  constructor(cause) {
    super("The service cannot be reached.");
    this.name = "ServiceUnreachable";
    this.cause = cause;
  }
}

async function send(method, path, { json, body, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ServiceUnreachable(error);
  }
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      // not JSON: a proxy's page, say
    }
    throw new ApiError(response.status, parsed);
  }
  return response;
}

async function json(method, path, options) {
  const response = await send(method, path, options);
  return { body: await response.json(), date: response.headers.get("Date") };
}

/** Read ``event:``/``data:`` blocks from a streaming response; ``onEvent(name, data)``. */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    let name = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return;
    const text = data.join("\n");
    if (text === "[DONE]") return;
    onEvent(name, JSON.parse(text));
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        dispatch(block);
      }
    }
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ServiceUnreachable(error);
  }
  if (buffer.trim()) dispatch(buffer);
}

// -- containers ---------------------------------------------------------------------------

export const containers = {
  async create(name = "notebook") {
    return (await json("POST", "/v1/containers", { json: { name } })).body;
  },
  /** The container and the server's Date header (to count its idle time left). */
  async retrieve(id) {
    return json("GET", `/v1/containers/${encodeURIComponent(id)}`);
  },
  async interrupt(id) {
    return (await json("POST", `/v1/containers/${encodeURIComponent(id)}/interrupt`)).body;
  },
  async restart(id) {
    return (await json("POST", `/v1/containers/${encodeURIComponent(id)}/restart`)).body;
  },
  /** Run code, calling ``onOutput(output)`` as outputs stream in; resolves to the summary. */
  async execute(id, code, onOutput, { signal } = {}) {
    const response = await send("POST", `/v1/containers/${encodeURIComponent(id)}/execute`, {
      json: { code, stream: true },
      signal,
    });
    let summary = null;
    let failure = null;
    await readEvents(response, (name, data) => {
      if (name === "output") onOutput(data);
      else if (name === "done") summary = data;
      else if (name === "error") failure = new ApiError(500, data);
    });
    if (failure) throw failure;
    if (!summary) throw new ServiceUnreachable(new Error("the execution stream ended early"));
    return summary;
  },
  async listFiles(id) {
    const files = [];
    let after = null;
    for (let page = 0; page < 20; page += 1) {
      const query = new URLSearchParams({ limit: "100", order: "asc" });
      if (after) query.set("after", after);
      const { body } = await json("GET", `/v1/containers/${encodeURIComponent(id)}/files?${query}`);
      files.push(...body.data);
      if (!body.has_more || !body.last_id) break;
      after = body.last_id;
    }
    return files;
  },
  async upload(id, file) {
    const form = new FormData();
    form.append("file", file, file.name);
    return (await json("POST", `/v1/containers/${encodeURIComponent(id)}/files`, { body: form }))
      .body;
  },
  async deleteFile(id, fileId) {
    return (await json("DELETE", `/v1/containers/${encodeURIComponent(id)}/files/${encodeURIComponent(fileId)}`)).body;
  },
  /** The kernel's completions; ``cursorPos`` counts code points, as Python does. */
  async complete(id, code, cursorPos, { signal } = {}) {
    return (await json("POST", `/v1/containers/${encodeURIComponent(id)}/complete`, {
      json: { code, cursor_pos: cursorPos },
      signal,
    })).body;
  },
  async inspect(id, code, cursorPos, detailLevel = 0, { signal } = {}) {
    return (await json("POST", `/v1/containers/${encodeURIComponent(id)}/inspect`, {
      json: { code, cursor_pos: cursorPos, detail_level: detailLevel },
      signal,
    })).body;
  },
  async variables(id) {
    return (await json("GET", `/v1/containers/${encodeURIComponent(id)}/variables`)).body;
  },
  fileUrl(containerId, fileId) {
    return `/v1/containers/${encodeURIComponent(containerId)}/files/${encodeURIComponent(fileId)}/content`;
  },
};

// -- notebooks ----------------------------------------------------------------------------

export const notebooks = {
  /** The conversation up to ``responseId`` as an nbformat v4 notebook (parsed JSON). */
  async ofResponse(responseId) {
    return (await json("GET", `/v1/responses/${encodeURIComponent(responseId)}/notebook`)).body;
  },
  /** What ran in a container, in order. */
  async ofContainer(containerId) {
    return (await json("GET", `/v1/containers/${encodeURIComponent(containerId)}/notebook`)).body;
  },
};

// -- responses ----------------------------------------------------------------------------

export const responses = {
  /** Stream a response; ``onEvent(type, data)`` for every event. */
  async stream(request, onEvent, { signal } = {}) {
    const response = await send("POST", "/v1/responses", {
      json: { ...request, stream: true },
      signal,
      headers: { Accept: "text/event-stream" },
    });
    await readEvents(response, (name, data) => onEvent(data.type || name, data));
  },
  async retrieve(id) {
    return (await json("GET", `/v1/responses/${encodeURIComponent(id)}`)).body;
  },
  async inputItems(id) {
    const items = [];
    let after = null;
    for (let page = 0; page < 50; page += 1) {
      const query = new URLSearchParams({ limit: "100", order: "asc" });
      if (after) query.set("after", after);
      const { body } = await json(
        "GET",
        `/v1/responses/${encodeURIComponent(id)}/input_items?${query}`,
      );
      items.push(...body.data);
      if (!body.has_more || !body.last_id) break;
      after = body.last_id;
    }
    return items;
  },
};

export async function listModels() {
  return (await json("GET", "/v1/models")).body.data ?? [];
}
