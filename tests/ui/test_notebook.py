"""The notebook page without the model: cells written and run by hand in a real sandbox
(queue, numbers, errors, Run all, collapse, copy, charts, Markdown, the variable
inspector), files, conversations, interrupt and restart, an ended container, reload,
dark mode and the 420 px layout. Headless Chromium against the real server."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import FilePayload, Locator, Page, expect

from interpreter.responses.conversation import logs_of
from interpreter.sandboxes.outputs import (
    DisplayOutput,
    ErrorOutput,
    ExecutionResult,
    Output,
    StreamOutput,
)
from tests.conftest import RunningServer
from tests.ui.conftest import NARROW, WIDE, shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]

CSV = "region,price,units\n" + "".join(f"r{i},{100 + i},{i % 7}\n" for i in range(20))


def add_cell(page: Page, code: str, button: str = "+ Code cell") -> Locator:
    """Add a cell by hand and type ``code`` into it; returns the cell."""
    index = page.locator(".cell").count()
    page.get_by_role("button", name=button).click()
    cell = page.locator(".cell").nth(index)  # not .last: locators are evaluated lazily
    editor = cell.locator("textarea")
    expect(editor).to_be_focused()
    editor.fill(code)
    return cell


def run(cell: Locator) -> None:
    cell.get_by_role("button", name="Run").click()


def finished(cell: Locator) -> None:
    """Wait until the cell is idle again (its outputs may arrive before it ends)."""
    expect(cell.get_by_role("button", name="Run")).to_be_visible()


def outputs(cell: Locator) -> Locator:
    return cell.locator(".cell-outputs")


def container_id(page: Page) -> str:
    expect(page.locator("#container-id")).to_have_text(re.compile(r"^cntr_"))
    return page.locator("#container-id").inner_text()


def nothing_cut_off(page: Page, selector: str) -> bool:
    """Whether every element matching ``selector`` shows all its text (no scrolling)."""
    return bool(
        page.evaluate(
            "(s) => [...document.querySelectorAll(s)].every(n => n.scrollWidth <= n.clientWidth)",
            selector,
        )
    )


def overlaps(a: Locator, b: Locator) -> bool:
    one, two = a.bounding_box(), b.bounding_box()
    assert one and two
    return not (
        one["x"] + one["width"] <= two["x"]
        or two["x"] + two["width"] <= one["x"]
        or one["y"] + one["height"] <= two["y"]
        or two["y"] + two["height"] <= one["y"]
    )


def test_cells_queue_count_collapse_copy_chart_and_reload(page: Page, request) -> None:
    page.goto("/")
    expect(
        page.get_by_role("heading", name="Ask something, or write code yourself")
    ).to_be_visible()
    expect(page.locator("#container-status")).to_have_text("not started")

    # Two cells run back to back: the second waits its turn, and says so.
    slow = add_cell(page, "import time\ntime.sleep(2)\nprint('slept')")
    slow.locator("textarea").press("Shift+Enter")
    queued = page.locator(".cell").nth(1)  # Shift+Enter made it, in edit mode
    expect(queued.locator("textarea")).to_be_focused()
    queued.locator("textarea").fill("print('after')")
    queued.locator("textarea").press("Shift+Enter")
    expect(slow.locator(".cell-state")).to_have_text("Running…")
    expect(slow.locator(".cell-prompt")).to_have_text("In [*]:")
    expect(queued.locator(".cell-state")).to_have_text("Waiting…")
    expect(queued.locator(".cell-prompt")).to_have_text("In […]:")
    expect(outputs(queued)).to_have_text("after")
    expect(slow.locator(".cell-prompt")).to_have_text("In [1]:")
    expect(queued.locator(".cell-prompt")).to_have_text("In [2]:")
    cid = container_id(page)
    expect(page.locator("#container-status")).to_have_text("running")
    expect(page.locator("#container-memory")).to_have_text("1 GB")
    expect(page.locator("#container-idle")).to_have_text(re.compile(r"\d+:\d\d of 20:00"))

    # A cell with no output draws no output strip.
    quiet = page.locator(".cell").nth(2)
    quiet.locator("textarea").fill("import numpy as np\ngrid = np.zeros((2, 3))\nx = 6 * 7")
    run(quiet)
    expect(quiet.locator(".cell-prompt")).to_have_text("In [3]:")
    expect(quiet.locator(".cell-output-part")).to_be_hidden()

    # The variable inspector: names, types, shapes, values; asking does not move the count.
    variables = page.get_by_role("region", name="Variables")
    expect(variables.get_by_role("row", name=re.compile(r"^grid ndarray 2 × 3"))).to_be_visible()
    expect(variables.get_by_role("row", name="x int 42")).to_be_visible()
    variables.get_by_role("button", name="Refresh").click()
    error = add_cell(page, "print('before the error')\n1/0")
    run(error)
    expect(error.locator(".error-head")).to_have_text("ZeroDivisionError: division by zero")
    expect(error.locator(".cell-prompt")).to_have_text("In [4]:")
    # The traceback is never cut off on the right.
    assert nothing_cut_off(page, ".output-error, .traceback, .error-head")

    # A chart: enlarged in a dialog, downloadable as a PNG.
    chart = add_cell(
        page,
        "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9, 16], marker='o')\nplt.show()",
    )
    run(chart)
    image = outputs(chart).get_by_role("button", name="Enlarge image")
    expect(image).to_be_visible()
    image.click()
    viewer = page.get_by_role("dialog", name="Image")
    expect(viewer).to_be_visible()
    big = viewer.locator("img").bounding_box()
    small = image.locator("img").bounding_box()
    assert big and small and big["width"] > small["width"]
    with page.expect_download() as download:
        viewer.get_by_role("link", name="Download PNG").click()
    assert download.value.suggested_filename.endswith(".png")
    assert download.value.path().read_bytes().startswith(b"\x89PNG")
    shoot(page, request.node.name, "chart-enlarged-1280")
    viewer.get_by_role("button", name="Close").click()
    expect(viewer).to_be_hidden()

    # Copy buttons: a cell's code, and an output.
    queued.hover()
    queued.get_by_role("button", name="Copy code").click()
    assert page.evaluate("navigator.clipboard.readText()") == "print('after')"
    outputs(queued).hover()
    outputs(queued).get_by_role("button", name="Copy output").click()
    assert page.evaluate("navigator.clipboard.readText()") == "after\n"

    # Collapsing: a cell's code and its output, each from its left edge.
    slow.get_by_role("button", name="Hide code").click()
    expect(slow.locator("textarea")).to_be_hidden()
    expect(slow.get_by_role("button", name="Show code")).to_be_visible()
    expect(slow.get_by_role("button", name="⋯ 3 lines hidden")).to_be_visible()
    chart.get_by_role("button", name="Hide output").click()
    expect(outputs(chart)).to_be_hidden()
    expect(chart.get_by_role("button", name="⋯ output hidden")).to_be_visible()

    # A Markdown cell renders when run.
    notes = add_cell(page, "## Findings\n\nThe *squares* grow fast.", button="+ Text")
    notes.locator("textarea").press("Shift+Enter")
    expect(notes.get_by_role("heading", name="Findings")).to_be_visible()
    expect(notes.locator("em")).to_have_text("squares")
    expect(page.locator(".cell")).to_have_count(7)  # Shift+Enter added one at the end
    shoot(page, request.node.name, "cells-1280")

    # Run all: top to bottom, stopping at the error (the cells after it are not run).
    page.get_by_role("button", name="Run all").click()
    expect(error.locator(".cell-prompt")).to_have_text("In [9]:")
    finished(chart)
    expect(chart.locator(".cell-notice")).to_have_text("Not run: a cell above it failed.")
    expect(chart.locator(".cell-prompt")).to_have_text("In [5]:")

    page.get_by_role("textbox", name="Message").fill("a draft, not sent yet")
    page.reload()
    expect(page.get_by_role("textbox", name="Message")).to_have_value("a draft, not sent yet")
    cells = page.locator(".cell")
    expect(cells).to_have_count(7)
    expect(cells.nth(0).locator("textarea")).to_be_hidden()  # still collapsed
    expect(outputs(cells.nth(1))).to_have_text("after")
    expect(cells.nth(3).locator(".cell-prompt")).to_have_text("In [9]:")
    expect(cells.nth(4).get_by_role("button", name="⋯ output hidden")).to_be_visible()
    expect(cells.nth(5).get_by_role("heading", name="Findings")).to_be_visible()
    expect(page.locator("#container-id")).to_have_text(cid)
    expect(page.locator("#container-status")).to_have_text("running")


def test_interrupt_restart_lost_service_and_container(
    page: Page, ui_server: RunningServer, request
) -> None:
    page.goto("/")
    busy = add_cell(page, "while True:\n    pass")
    busy.locator("textarea").press("Control+Enter")
    expect(busy.locator(".cell-state")).to_have_text("Running…")
    expect(busy.locator(".cell-prompt")).to_have_text("In [*]:")
    expect(page.locator("#container-status")).to_have_text("busy")
    busy.get_by_role("button", name="Interrupt").click()
    expect(busy.locator(".output-error")).to_contain_text("KeyboardInterrupt")
    finished(busy)

    after = add_cell(page, "marker = 1\nprint('still here')")
    run(after)
    expect(outputs(after)).to_have_text("still here")
    finished(after)

    # Restarting the kernel (after confirming) clears its variables; the notice that
    # says so covers neither the message box's buttons nor anything at 420 px.
    page.get_by_role("button", name="Restart kernel").click()
    dialog = page.get_by_role("dialog", name="Restart the kernel?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Restart").click()
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Kernel restarted")
    for button in ("Send", "+ Code cell", "Attach file"):
        assert not overlaps(toast, page.get_by_role("button", name=button))
    shoot(page, request.node.name, "restarted-1280")
    page.set_viewport_size(NARROW)
    assert not overlaps(toast, page.get_by_role("button", name="Send"))
    assert not overlaps(toast, page.locator(".topbar"))
    page.set_viewport_size(WIDE)
    probe = add_cell(page, "print('marker' in globals())")
    run(probe)
    expect(outputs(probe)).to_have_text("False")
    finished(probe)

    # The service stops answering: the page says so, keeps the cell, and recovers.
    page.route(re.compile(r"/(v1|healthz)"), lambda route: route.abort())
    run(probe)
    banner = page.get_by_role("alert")
    expect(banner).to_contain_text("cannot be reached")
    expect(probe.locator(".cell-notice")).to_contain_text("cannot be reached")
    expect(probe.locator("textarea")).to_have_value("print('marker' in globals())")
    expect(outputs(probe)).to_have_text("False")  # the last outputs are kept
    shoot(page, request.node.name, "unreachable-1280")
    page.unroute(re.compile(r"/(v1|healthz)"))
    banner.get_by_role("button", name="Try again").click()
    expect(banner).to_be_hidden()

    # The container goes away behind the page's back (as when it expires).
    old = container_id(page)
    httpx.delete(f"{ui_server.v1}/containers/{old}").raise_for_status()
    run(after)
    expect(banner).to_contain_text("no longer exists")
    expect(page.locator("#container-status")).to_have_text("gone")
    shoot(page, request.node.name, "container-gone-1280")
    banner.get_by_role("button", name="Start a new container").click()
    expect(banner).to_be_hidden()
    expect(page.locator("#container-id")).not_to_have_text(old)
    run(after)
    finished(after)
    expect(outputs(after)).to_have_text("still here")
    expect(after.locator(".cell-prompt")).to_have_text("In [1]:")  # a fresh kernel


def test_files_conversations_dark_mode_and_420px(page: Page, request) -> None:
    page.goto("/")
    page.locator("#file-input").set_input_files(
        files=[FilePayload(name="sales.csv", mimeType="text/csv", buffer=CSV.encode())]
    )
    files = page.get_by_role("region", name=re.compile("^Files"))
    link = files.get_by_role("link", name="sales.csv")
    expect(link).to_be_visible()
    expect(page.locator("#upload-status")).to_contain_text("/mnt/data/sales.csv")
    download = page.request.get(link.get_attribute("href") or "")
    assert download.ok and download.text() == CSV
    # The upload waits above the message box, to go with the next message.
    attached = page.get_by_role("list", name="Attached to your next message")
    expect(attached.get_by_role("listitem")).to_have_text(["sales.csv"])

    # Drag and drop a second file onto the drop zone.
    page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["hello\\n"], "notes.txt", {type: "text/plain"}));
            const zone = document.getElementById("dropzone");
            for (const type of ["dragenter", "dragover", "drop"]) {
                const init = {dataTransfer: data, bubbles: true, cancelable: true};
                zone.dispatchEvent(new DragEvent(type, init));
            }
        }"""
    )
    expect(files.get_by_role("link", name="notes.txt")).to_be_visible()
    expect(attached.get_by_role("listitem")).to_have_text(["sales.csv", "notes.txt"])
    attached.get_by_role("button", name="Remove notes.txt from the next message").click()
    expect(attached.get_by_role("listitem")).to_have_text(["sales.csv"])

    # Deleting a file asks first.
    files.get_by_role("button", name="Delete notes.txt").click()
    confirm = page.get_by_role("dialog", name="Delete notes.txt?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(files.get_by_role("link", name="notes.txt")).to_be_visible()
    files.get_by_role("button", name="Delete notes.txt").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(files.get_by_role("link", name="notes.txt")).to_be_hidden()

    cell = add_cell(
        page,
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/sales.csv')\n"
        "print(df.shape)\n"
        "df.describe()",
    )
    cell.locator("textarea").press("Control+Enter")
    table = outputs(cell).locator(".html-output table")
    expect(table).to_be_visible()
    expect(table.locator("th", has_text="price")).to_be_visible()
    expect(outputs(cell)).to_contain_text("(20, 3)")
    writer = add_cell(page, "df.head(3).to_csv('/mnt/data/top3.csv', index=False)")
    run(writer)
    expect(files.get_by_role("link", name="top3.csv")).to_be_visible()
    shoot(page, request.node.name, "files-1280")

    # Conversations: named after their first code (never all "Notebook"), and kept
    # distinct; renamed; searched; removed with one click, and back with Undo.
    chats = page.get_by_role("navigation", name="Conversations")
    first = chats.get_by_role("button", name=re.compile(r"^import pandas as pd"))
    expect(first).to_be_visible()
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator(".cell")).to_have_count(0)
    again = add_cell(page, "import pandas as pd")
    run(again)
    expect(
        chats.get_by_role("button", name=re.compile(r"^import pandas as pd \(2\)"))
    ).to_be_visible()
    chats.get_by_role("button", name="Rename “import pandas as pd (2)”").click()
    title = chats.get_by_role("textbox", name="New title")
    title.fill("Scratch")
    title.press("Enter")
    expect(chats.get_by_role("button", name=re.compile("^Scratch"))).to_be_visible()
    expect(page).to_have_title("Scratch · Code Interpreter")
    search = chats.get_by_role("searchbox", name="Search conversations")
    search.fill("scr")
    expect(chats.locator(".conversation-open")).to_have_count(1)
    search.fill("")
    expect(chats.locator(".conversation-open")).to_have_count(2)
    chats.get_by_role("button", name="Remove “import pandas as pd”").click()
    expect(chats.locator(".conversation-open")).to_have_count(1)
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Removed “import pandas as pd”.")
    toast.get_by_role("button", name="Undo").click()
    expect(chats.locator(".conversation-open")).to_have_count(2)
    first.click()
    expect(page.locator(".cell")).to_have_count(2)
    expect(table).to_be_visible()

    # Dark mode follows the browser's preference.
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    text = page.evaluate("getComputedStyle(document.body).color")
    assert luminance(background) < 0.1 < 0.7 < luminance(text), (background, text)
    shoot(page, request.node.name, "dark-1280")

    # 420 px: a one-line header, drawers for the side panels, details behind a button.
    page.set_viewport_size(NARROW)
    header = page.locator(".topbar").bounding_box()
    assert header and header["height"] <= 56, header
    shoot(page, request.node.name, "dark-420")
    page.get_by_role("button", name="Container details").click()
    expect(page.locator("#container-id")).to_be_visible()
    expect(page.get_by_role("button", name="Restart kernel")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#container-id")).to_be_hidden()
    page.get_by_role("button", name="Files", exact=True).click()
    expect(files.get_by_role("link", name="top3.csv")).to_be_visible()
    shoot(page, request.node.name, "files-drawer-dark-420")
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Files", exact=True)).to_be_focused()
    page.get_by_role("button", name="Variables", exact=True).click()
    expect(
        page.get_by_role("region", name="Variables").get_by_role("rowheader", name="df")
    ).to_be_visible()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Chats").click()
    expect(chats.get_by_role("button", name=re.compile("^Scratch"))).to_be_visible()
    page.keyboard.press("Escape")
    page.emulate_media(color_scheme="light")
    shoot(page, request.node.name, "table-420")
    page.set_viewport_size(WIDE)


def luminance(css_colour: str) -> float:
    """Relative luminance (0 black, 1 white) of an ``rgb(r, g, b)`` colour."""
    red, green, blue = (int(v) / 255 for v in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def test_model_errors_markdown_and_kernel_html_render_safely(
    page: Page, ui_server: RunningServer
) -> None:
    """A model cell's error (in its logs, as the service writes them) reads like a hand
    cell's; the model's text and a kernel's HTML are untrusted: nothing in them runs."""
    page.goto("/")
    box = httpx.post(f"{ui_server.v1}/containers", json={"name": "errors"}).json()["id"]

    def logs(code: str) -> str:
        ran = httpx.post(f"{ui_server.v1}/containers/{box}/execute", json={"code": code}).json()
        return logs_of(execution_result(ran))

    shown = page.evaluate(
        """async (cases) => {
            const { OutputArea } = await import("/ui/outputs.js");
            return cases.map((logs) => {
                const node = document.createElement("div");
                document.body.append(node);
                new OutputArea(node).setAll([{ type: "logs", logs }]);
                const error = node.querySelector(".output-error");
                return {
                    text: node.querySelector(".output-stream")?.innerText ?? null,
                    head: error?.querySelector(".error-head").innerText ?? null,
                    traceback: error?.querySelector(".traceback").innerText ?? null,
                };
            });
        }""",
        [logs("print(1))"), logs("print('first')\nvalue = {}\nvalue['missing']"), logs("1 + 1")],
    )
    syntax, key, plain = shown
    assert syntax["text"] is None
    assert syntax["head"] == "SyntaxError: unmatched ')'"
    assert syntax["traceback"].count("SyntaxError") == 1  # not twice, as the logs have it
    assert key["text"].strip() == "first"
    assert key["head"] == "KeyError: 'missing'"
    assert "value['missing']" in key["traceback"]
    assert plain == {"text": "2\n", "head": None, "traceback": None}

    result = page.evaluate(
        """async () => {
            const { renderMarkdown } = await import("/ui/markdown.js");
            const { sanitizeHtml } = await import("/ui/outputs.js");
            window.__ran = false;
            const hostile = [
                "# Title", "<img src=x onerror=\\"window.__ran = true\\">",
                "[click](javascript:window.__ran=true) and [ok](https://example.org)",
                "![pic](http://example.org/p.png)", "**bold** `<b>code</b>`",
                "| a | b |\\n|---|--:|\\n| <script>x</script> | 2 |",
            ].join("\\n\\n");
            const md = document.createElement("div");
            md.append(renderMarkdown(hostile));
            const html = document.createElement("div");
            html.append(sanitizeHtml(
                '<style>body{display:none}</style><table onclick="x()"><tr>' +
                '<td colspan="2" style="color:red">1</td></tr></table>' +
                '<img src=x onerror="window.__ran = true"><a href="javascript:alert(1)">a</a>' +
                '<script>window.__ran = true</script>'
            ));
            document.body.append(md, html);
            await new Promise((resolve) => setTimeout(resolve, 100));
            return {
                ran: window.__ran,
                mdTags: [...md.querySelectorAll("*")].map((n) => n.localName),
                links: [...md.querySelectorAll("a")].map((a) => a.getAttribute("href")),
                text: md.textContent,
                htmlTags: [...html.querySelectorAll("*")].map((n) => n.localName),
                attrs: [...html.querySelectorAll("*")]
                    .flatMap((n) => [...n.attributes].map((a) => a.name)),
            };
        }"""
    )
    assert result["ran"] is False
    assert not {"img", "script", "iframe"} & set(result["mdTags"])
    assert {"h3", "strong", "code", "table", "a"} <= set(result["mdTags"])
    assert result["links"] == ["https://example.org", "http://example.org/p.png"]
    assert '<img src=x onerror="window.__ran = true">' in result["text"]
    assert "<script>x</script>" in result["text"]
    assert set(result["htmlTags"]) == {"table", "tbody", "tr", "td"}
    assert result["attrs"] == ["colspan"]


def execution_result(ran: dict[str, Any]) -> ExecutionResult:
    """The service's own result type, from what /execute answered."""
    outputs: list[Output] = []
    for output in ran["outputs"]:
        if output["type"] == "stream":
            outputs.append(StreamOutput(output["name"], output["text"]))
        elif output["type"] == "error":
            outputs.append(ErrorOutput(output["ename"], output["evalue"], output["traceback"]))
        elif output["type"] == "result":
            outputs.append(DisplayOutput(output["data"], output["execution_count"]))
    return ExecutionResult(status=ran["status"], outputs=outputs)
