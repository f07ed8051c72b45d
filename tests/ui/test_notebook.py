"""The notebook page without the model: cells written and run by hand in a real
sandbox, files, interrupt, an ended container, and reload. Headless Chromium."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import FilePayload, Locator, Page, expect

from tests.conftest import RunningServer
from tests.ui.conftest import NARROW, WIDE, shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]

CSV = "region,price,units\n" + "".join(f"r{i},{100 + i},{i % 7}\n" for i in range(20))


def add_cell(page: Page, code: str) -> Locator:
    """Add a cell by hand and type ``code`` into it; returns the cell."""
    index = page.locator(".cell").count()
    page.get_by_role("button", name="+ Code cell").click()
    cell = page.locator(".cell").nth(index)  # not .last: locators are evaluated lazily
    editor = cell.locator("textarea")
    expect(editor).to_be_focused()
    editor.fill(code)
    return cell


def finished(cell: Locator) -> None:
    """Wait until the cell is idle again (its outputs may arrive before it ends)."""
    expect(cell.get_by_role("button", name="Run")).to_be_visible()


def outputs(cell: Locator) -> Locator:
    return cell.locator(".cell-outputs")


def container_id(page: Page) -> str:
    expect(page.locator("#container-id")).to_have_text(re.compile(r"^cntr_"))
    return page.locator("#container-id").inner_text()


def test_cells_run_plot_edit_rerun_and_survive_reload(page: Page, request) -> None:
    page.goto("/")
    expect(
        page.get_by_role("heading", name="Ask something, or write code yourself")
    ).to_be_visible()
    expect(page.locator("#container-status")).to_have_text("not started")
    shoot(page, request.node.name, "empty-1280")

    first = add_cell(page, "x = 6 * 7\nprint(x)")
    first.locator("textarea").press("Shift+Enter")
    expect(outputs(first)).to_have_text("42")
    expect(first.locator(".cell-prompt")).to_have_text(re.compile(r"In \[\d+\]:"))
    cid = container_id(page)
    expect(page.locator("#container-status")).to_have_text("running")
    expect(page.locator("#container-memory")).to_have_text("1 GB")
    expect(page.locator("#container-idle")).to_have_text(re.compile(r"\d+:\d\d of 20:00"))

    plot = add_cell(
        page,
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 4, 9, 16], marker='o')\n"
        "plt.title('squares')\n"
        "plt.show()",
    )
    plot.get_by_role("button", name="Run").click()
    image = outputs(plot).locator("img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 100")

    # Edit the first cell and run it again: same kernel, new output.
    first.locator("textarea").fill("x = 7 * 8\nprint(x)")
    first.get_by_role("button", name="Run").click()
    expect(outputs(first)).to_have_text("56")
    # The kernel kept its state between cells.
    check = add_cell(page, "x + 1")
    check.locator("textarea").press("Shift+Enter")
    expect(outputs(check)).to_contain_text("57")
    finished(check)
    shoot(page, request.node.name, "cells-1280")
    page.set_viewport_size(NARROW)
    shoot(page, request.node.name, "cells-400")
    page.set_viewport_size(WIDE)

    page.get_by_role("textbox", name="Message").fill("a draft, not sent yet")
    page.reload()
    expect(page.get_by_role("textbox", name="Message")).to_have_value("a draft, not sent yet")
    cells = page.locator(".cell")
    expect(cells).to_have_count(3)
    expect(cells.nth(0).locator("textarea")).to_have_value("x = 7 * 8\nprint(x)")
    expect(outputs(cells.nth(0))).to_have_text("56")
    expect(outputs(cells.nth(1)).locator("img")).to_be_visible()
    expect(page.locator("#container-id")).to_have_text(cid)
    expect(page.locator("#container-status")).to_have_text("running")
    # The conversation is listed, and a new chat starts empty.
    expect(
        page.get_by_role("navigation", name="Conversations").get_by_role(
            "button", name=re.compile("^Notebook")
        )
    ).to_be_visible()
    page.get_by_role("button", name="+ New chat").click()
    expect(page.locator(".cell")).to_have_count(0)
    page.get_by_role("button", name=re.compile("^Notebook")).click()
    expect(page.locator(".cell")).to_have_count(3)


def test_interrupt_a_busy_cell_then_survive_a_lost_container(
    page: Page, ui_server: RunningServer, request
) -> None:
    page.goto("/")
    busy = add_cell(page, "while True:\n    pass")
    busy.locator("textarea").press("Shift+Enter")
    expect(busy.locator(".cell-state")).to_have_text("Running…")
    expect(busy.locator(".cell-prompt")).to_have_text("In [*]:")
    expect(page.locator("#container-status")).to_have_text("busy")
    busy.get_by_role("button", name="Interrupt").click()
    expect(busy.locator(".output-error")).to_contain_text("KeyboardInterrupt")
    expect(busy.get_by_role("button", name="Run")).to_be_visible()

    after = add_cell(page, "marker = 1\nprint('still here')")
    after.locator("textarea").press("Shift+Enter")
    expect(outputs(after)).to_have_text("still here")
    finished(after)

    # Restarting the kernel (after confirming) clears its variables.
    page.get_by_role("button", name="Restart kernel").click()
    dialog = page.get_by_role("dialog", name="Restart the kernel?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Restart").click()
    expect(page.locator("#bar-status")).to_contain_text("Kernel restarted")
    probe = add_cell(page, "print('marker' in globals())")
    probe.locator("textarea").press("Shift+Enter")
    expect(outputs(probe)).to_have_text("False")
    finished(probe)

    # The service stops answering: the page says so, keeps the cell, and recovers.
    page.route(re.compile(r"/(v1|healthz)"), lambda route: route.abort())
    probe.get_by_role("button", name="Run").click()
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
    after.get_by_role("button", name="Run").click()
    expect(banner).to_contain_text("no longer exists")
    expect(page.locator("#container-status")).to_have_text("gone")
    shoot(page, request.node.name, "container-gone-1280")
    banner.get_by_role("button", name="Start a new container").click()
    expect(banner).to_be_hidden()
    expect(page.locator("#container-id")).not_to_have_text(old)
    after.get_by_role("button", name="Run").click()
    finished(after)
    expect(outputs(after)).to_have_text("still here")
    expect(after.locator(".cell-prompt")).to_have_text("In [1]:")  # a fresh kernel


def test_files_upload_list_download_and_tables(page: Page, request) -> None:
    page.goto("/")
    page.locator("#file-input").set_input_files(
        files=[FilePayload(name="sales.csv", mimeType="text/csv", buffer=CSV.encode())]
    )
    files = page.get_by_role("complementary", name=re.compile("Files"))
    link = files.get_by_role("link", name="sales.csv")
    expect(link).to_be_visible()
    expect(page.locator("#upload-status")).to_contain_text("/mnt/data/sales.csv")
    download = page.request.get(link.get_attribute("href") or "")
    assert download.ok and download.text() == CSV

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

    cell = add_cell(
        page,
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/sales.csv')\n"
        "print(df.shape)\n"
        "df.describe()",
    )
    cell.locator("textarea").press("Shift+Enter")
    table = outputs(cell).locator(".html-output table")
    expect(table).to_be_visible()
    expect(table.locator("th", has_text="price")).to_be_visible()
    expect(outputs(cell)).to_contain_text("(20, 3)")

    # A file the code writes shows in the list too.
    writer = add_cell(page, "df.head(3).to_csv('/mnt/data/top3.csv', index=False)")
    writer.locator("textarea").press("Shift+Enter")
    expect(files.get_by_role("link", name="top3.csv")).to_be_visible()

    # An error reads as a traceback.
    broken = add_cell(page, "df['nope']")
    broken.locator("textarea").press("Shift+Enter")
    expect(broken.locator(".error-head")).to_have_text(re.compile("KeyError"))
    finished(broken)
    shoot(page, request.node.name, "files-1280")

    page.set_viewport_size(NARROW)
    page.get_by_role("button", name="Files", exact=True).click()
    expect(files.get_by_role("link", name="top3.csv")).to_be_visible()
    shoot(page, request.node.name, "files-drawer-400")
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Files", exact=True)).to_be_focused()
    shoot(page, request.node.name, "table-400")


def test_markdown_and_kernel_html_stay_inert(page: Page) -> None:
    """The model's text and a kernel's HTML are untrusted: nothing in them runs."""
    page.goto("/")
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
