"""Chatting with the real demo model on the notebook page: a whole session by keyboard
alone (Jupyter's keys, completion and help from the kernel, cells run by hand told to
the model), attachments, editing a sent message, regenerating an answer, and a model's
call waiting behind a cell run by hand. Headless Chromium against the real server and
sandboxes.

The demo model is being retrained: beyond what it reliably does ("What is 123 * 456?",
a CSV summary), these tests check what the page does, not what the model says."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import nbformat
import pytest
from playwright.sync_api import FilePayload, Locator, Page, Request, expect

from tests.conftest import RunningServer
from tests.ui.conftest import NARROW, WIDE, shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]

# The demo model learnt CSVs of this form: a label column and integer columns.
SALES = "name,price,units\n" + "".join(
    f"name{i},{(i * 37) % 1000},{(i * 11) % 100}\n" for i in range(20)
)


@pytest.fixture(scope="module")
def ui_model() -> str:
    return "demo"


def record_requests(page: Page) -> list[dict[str, Any]]:
    """The bodies of the page's POST /v1/responses, as sent."""
    sent: list[dict[str, Any]] = []

    def seen(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/responses"):
            sent.append(json.loads(request.post_data or "{}"))

    page.on("request", seen)
    return sent


def turn_ended(page: Page) -> None:
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(page.locator("#turn-progress")).to_be_hidden()


def ask(page: Page, text: str) -> Locator:
    """Send ``text`` and wait for the turn to end; returns the turn's element."""
    turns = page.locator(".turn")
    index = turns.count()
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    turn = turns.nth(index)
    expect(turn.locator(".msg-user .msg-body")).to_have_text(text)
    turn_ended(page)
    return turn


def test_a_whole_session_by_keyboard_alone(page: Page, ui_server: RunningServer, request) -> None:
    sent = record_requests(page)
    keys = page.keyboard
    page.goto("/")
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_be_focused()
    keys.type("What is 123 * 456?")
    keys.press("Enter")
    turn = page.locator(".turn").first
    model_cell = turn.locator(".cell-model")
    expect(model_cell.locator(".cell-outputs")).to_contain_text("56088")
    turn_ended(page)
    expect(turn.locator(".msg-assistant")).to_contain_text("56088")
    # The model's cell has the kernel's number, as a hand cell would.
    expect(model_cell.locator(".cell-prompt")).to_have_text("In [1]:")
    assert sent[0]["truncation"] == "auto"
    assert sent[0]["input"] == "What is 123 * 456?"  # nothing run by hand yet

    # Esc: command mode on the last cell; B: a cell below; Enter: edit it.
    keys.press("Escape")
    expect(model_cell).to_be_focused()
    keys.press("b")
    cells = page.locator(".cell")
    expect(cells).to_have_count(2)
    first = cells.nth(1)
    expect(first).to_be_focused()
    keys.press("Enter")
    editor = first.locator("textarea")
    expect(editor).to_be_focused()
    keys.type("import pandas as pd\nprices = pd.DataFrame({'price': [3, 4, 5]})\n")
    # Tab completes from the kernel (a DataFrame's columns too); Shift+Tab shows help.
    keys.press("Shift+Enter")  # run what is there, so the kernel knows `prices`
    expect(first.locator(".cell-prompt")).to_have_text("In [2]:")
    second = cells.nth(2)
    expect(second.locator("textarea")).to_be_focused()
    keys.type("float(prices.pri")
    keys.press("Tab")
    expect(second.locator("textarea")).to_have_value("float(prices.price")
    keys.type(".mea")
    keys.press("Tab")
    expect(second.locator("textarea")).to_have_value("float(prices.price.mean")
    keys.type("(")
    keys.press("Shift+Tab")
    help_box = page.get_by_role("tooltip")
    expect(help_box).to_contain_text("Signature")
    keys.press("Escape")
    expect(help_box).to_be_hidden()
    keys.type("))")
    keys.press("Control+Enter")  # run, and stay on the cell in command mode
    expect(second.locator(".cell-outputs")).to_have_text("Out[3]:4.0")
    expect(second).to_be_focused()

    # M makes a Markdown cell; Shift+Enter renders it and opens a new cell below.
    keys.press("b")
    third = cells.nth(3)
    expect(third).to_be_focused()
    keys.press("m")
    keys.press("Enter")
    keys.type("## Findings\nThe mean price is 4.")
    keys.press("Shift+Enter")
    expect(third.get_by_role("heading", name="Findings")).to_be_visible()
    fourth = cells.nth(4)
    expect(fourth.locator("textarea")).to_be_focused()
    keys.type("prices.plot(title='prices')")
    keys.press("Shift+Enter")
    expect(fourth.locator(".output-image img")).to_be_visible()

    # D, D deletes (the new empty cell); Z brings it back; A inserts above; moving.
    keys.press("Escape")
    expect(cells).to_have_count(6)
    keys.press("d")
    keys.press("d")
    expect(cells).to_have_count(5)
    expect(fourth).to_be_focused()
    keys.press("z")
    expect(cells).to_have_count(6)
    keys.press("d")
    keys.press("d")
    expect(cells).to_have_count(5)
    keys.press("k")  # up, to the Markdown cell
    expect(third).to_be_focused()
    keys.press("a")
    expect(cells).to_have_count(6)
    inserted = cells.nth(3)
    expect(inserted).to_be_focused()
    keys.press("Enter")
    keys.type("note = 'moved'")
    keys.press("Escape")
    keys.press("Control+Shift+ArrowDown")  # below the Markdown cell
    expect(cells.nth(4).locator("textarea")).to_have_value("note = 'moved'")
    keys.press("j")
    expect(cells.nth(5)).to_be_focused()
    keys.press("o")  # the chart's output folds away, and back
    expect(cells.nth(5).locator(".cell-outputs")).to_be_hidden()
    keys.press("o")
    expect(cells.nth(5).locator(".cell-outputs")).to_be_visible()

    # Shift+Esc: to the message box. The cells run by hand go to the model first.
    keys.press("Shift+Escape")
    expect(box).to_be_focused()
    keys.type("What is 2 + 3?")
    keys.press("Enter")
    turn_ended(page)
    runs = sent[1]["input"][:-1]
    assert [run["code"] for run in runs] == [
        "import pandas as pd\nprices = pd.DataFrame({'price': [3, 4, 5]})\n",
        "float(prices.price.mean())",
        "prices.plot(title='prices')",
    ]
    assert runs[1]["outputs"] == [{"type": "logs", "logs": "4.0\n"}]
    container = page.locator("#container-id").inner_text()
    assert all(
        run["type"] == "code_interpreter_call"
        and run["id"].startswith("ci_")
        and run["status"] == "completed"
        and run["container_id"] == container
        for run in runs
    )
    assert sent[1]["input"][-1] == {"type": "message", "role": "user", "content": "What is 2 + 3?"}
    # The service took them exactly as sent: they are the response's input items.
    second_turn = page.locator(".turn").nth(1)
    response_id = second_turn.get_attribute("data-response-id")
    listed = httpx.get(f"{ui_server.v1}/responses/{response_id}/input_items").json()["data"]
    assert [item for item in listed if item["type"] == "code_interpreter_call"] == runs

    # A reload keeps every cell where it was, numbered, and the Markdown rendered.
    count = cells.count()
    page.reload()
    expect(page.locator(".turn")).to_have_count(2)
    expect(cells).to_have_count(count)
    expect(page.locator(".turn").first.locator(".cell-prompt")).to_have_text("In [1]:")
    expect(cells.nth(1).locator(".cell-prompt")).to_have_text("In [2]:")
    expect(page.get_by_role("heading", name="Findings")).to_be_visible()
    expect(cells.nth(4).locator("textarea")).to_have_value("note = 'moved'")

    # The README's screenshots (docs/screenshot-light.png and -dark.png) are these two.
    page.locator("#notebook").evaluate("notebook => notebook.scrollTo(0, 0)")
    shoot(page, request.node.name, "light-1280")
    page.emulate_media(color_scheme="dark")
    shoot(page, request.node.name, "dark-1280")
    page.set_viewport_size(NARROW)
    shoot(page, request.node.name, "dark-420")
    page.emulate_media(color_scheme="light")
    shoot(page, request.node.name, "light-420")
    page.set_viewport_size(WIDE)

    # Download .ipynb: the conversation as a notebook, prompts and answers as Markdown
    # between the code; a cell run by hand since the last message goes at the end.
    moved = cells.nth(4)
    moved.locator("textarea").focus()
    keys.press("Shift+Enter")
    expect(moved.locator(".cell-prompt")).to_have_text(re.compile(r"In \[\d+\]:"))
    with page.expect_download() as download:
        page.get_by_role("button", name="Download .ipynb").click()
    assert download.value.suggested_filename.endswith(".ipynb")
    notebook = nbformat.read(download.value.path(), as_version=4)
    nbformat.validate(notebook)
    sources = [cell.source for cell in notebook.cells]
    assert notebook.cells[0].cell_type == "markdown"
    assert "What is 123 * 456?" in sources[0]
    hand = [source for source in sources if source in [run["code"] for run in runs]]
    assert hand == [run["code"] for run in runs]
    asked = next(i for i, s in enumerate(sources) if "What is 2 + 3?" in s)
    assert sources.index(runs[-1]["code"]) < asked
    assert notebook.cells[-1].source == "note = 'moved'"


def test_attachments_edit_regenerate_and_a_model_call_that_waits(page: Page, request) -> None:
    sent = record_requests(page)
    page.goto("/")
    page.locator("#file-input").set_input_files(
        files=[FilePayload(name="sales.csv", mimeType="text/csv", buffer=SALES.encode())]
    )
    attached = page.get_by_role("list", name="Attached to your next message")
    expect(attached.get_by_role("listitem")).to_have_text(["sales.csv"])

    turn = ask(page, "I uploaded sales.csv. Summarise it: rows, columns and the mean of price.")
    # The attachment moved from the message box into the message that sent it.
    expect(turn.get_by_role("list", name="Attached files").get_by_role("listitem")).to_have_text(
        ["sales.csv"]
    )
    expect(attached).to_be_hidden()
    expect(turn.locator(".cell-model .cell-outputs")).to_contain_text("(20, 3)")
    expect(turn.locator(".msg-assistant")).to_contain_text("20 rows")
    first_id = turn.get_attribute("data-response-id")
    shoot(page, request.node.name, "csv-1280")

    # Edit the sent message: the turn is asked again, from where it started.
    turn.locator(".msg-user").hover()
    turn.get_by_role("button", name="Edit message").click()
    editor = page.get_by_role("textbox", name="Edit your message")
    expect(editor).to_be_focused()
    editor.fill("What is 123 * 456?")
    editor.press("Enter")
    turn_ended(page)
    turns = page.locator(".turn")
    expect(turns).to_have_count(1)
    edited = turns.first
    expect(edited.locator(".msg-user .msg-body")).to_have_text("What is 123 * 456?")
    expect(edited.get_by_role("listitem")).to_have_text(["sales.csv"])  # still attached
    assert "previous_response_id" not in sent[1]
    assert sent[1]["input"] == "What is 123 * 456?"
    expect(edited.locator(".msg-assistant")).to_contain_text("56088")
    edited_id = edited.get_attribute("data-response-id")
    assert edited_id != first_id

    # Regenerate the last answer: the same message again, a new response.
    edited.get_by_role("button", name="Regenerate").click()
    turn_ended(page)
    expect(turns).to_have_count(1)
    assert sent[2]["input"] == sent[1]["input"]
    assert "previous_response_id" not in sent[2]
    expect(turns.first).not_to_have_attribute("data-response-id", edited_id or "")
    page.reload()
    expect(turns).to_have_count(1)
    expect(turns.first.locator(".msg-user .msg-body")).to_have_text("What is 123 * 456?")

    # A model's call that arrives while a hand cell runs waits for it, and says so.
    page.get_by_role("button", name="+ Code cell").click()
    busy = page.locator(".cell-hand").last
    busy.locator("textarea").fill("import time\nfor _ in range(900):\n    time.sleep(0.1)")
    busy.locator("textarea").press("Control+Enter")
    expect(busy.locator(".cell-state")).to_have_text("Running…")
    page.get_by_role("textbox", name="Message").fill("What is 9 * 9?")
    page.get_by_role("textbox", name="Message").press("Enter")
    waiting = turns.nth(1).locator(".cell-model")
    expect(waiting.locator(".cell-state")).to_have_text("Waiting…")
    expect(waiting.locator(".cell-prompt")).to_have_text("In […]:")
    expect(waiting.get_by_role("button", name="Cancel")).to_be_hidden()  # Stop ends it
    shoot(page, request.node.name, "model-call-waits-1280")
    busy.get_by_role("button", name="Interrupt").click()
    expect(busy.locator(".output-error")).to_contain_text("KeyboardInterrupt")
    turn_ended(page)
    expect(waiting.get_by_role("button", name="Run")).to_be_visible()
    expect(waiting.locator(".cell-prompt")).to_have_text(re.compile(r"In \[\d+\]:"))
