"""Chatting with the real demo model on the notebook page: streamed code cells, their
outputs and the answer; a follow-up in the same container; an uploaded CSV; editing
the model's cell; reload. Headless Chromium against the real server and sandboxes."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import FilePayload, Locator, Page, expect

from tests.ui.conftest import NARROW, WIDE, shoot

pytestmark = [pytest.mark.browser, pytest.mark.docker]

# The demo model learnt CSVs of this form: a label column and integer columns.
SALES = "name,price,units\n" + "".join(
    f"name{i},{(i * 37) % 1000},{(i * 11) % 100}\n" for i in range(20)
)
PRICE_MEAN = sum((i * 37) % 1000 for i in range(20)) / 20


@pytest.fixture(scope="module")
def ui_model() -> str:
    return "demo"


def ask(page: Page, text: str) -> Locator:
    """Send ``text`` and wait for the turn to end; returns the turn's element."""
    turns = page.locator(".turn")
    index = turns.count()
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    turn = turns.nth(index)
    expect(turn.locator(".msg-user")).to_have_text(text)
    expect(page.get_by_role("button", name="Send")).to_be_visible()  # the turn ended
    expect(page.locator("#turn-progress")).to_be_hidden()
    return turn


def test_ask_see_the_cell_run_and_the_answer_then_reload(page: Page, request) -> None:
    page.goto("/")
    turn = ask(page, "What is 123 * 456?")
    cell = turn.locator(".cell-model")
    expect(cell).to_have_count(1)
    expect(cell.locator("textarea")).to_have_value(re.compile(r"123\s*\*\s*456"))
    expect(cell.locator(".cell-outputs")).to_contain_text("56088")
    answer = turn.locator(".msg-assistant")
    expect(answer).to_contain_text("56088")
    # Reasoning, when the model writes any, starts collapsed.
    for details in turn.locator("details.reasoning").all():
        assert details.get_attribute("open") is None
    container = page.locator("#container-id").inner_text()
    assert container.startswith("cntr_")
    expect(page.locator("#container-status")).to_have_text("running")
    shoot(page, request.node.name, "answer-1280")
    page.set_viewport_size(NARROW)
    shoot(page, request.node.name, "answer-400")
    page.set_viewport_size(WIDE)

    # A follow-up continues the conversation in the same container.
    second = ask(page, "What is 2 + 3?")
    expect(second.locator(".cell-model .cell-outputs")).to_contain_text("5")
    expect(second.locator(".msg-assistant")).not_to_be_empty()
    expect(page.locator("#container-id")).to_have_text(container)

    # Take over the model's first cell by hand: edit it and run it again.
    cell.locator("textarea").fill("print(123 * 457)")
    cell.locator("textarea").press("Shift+Enter")
    expect(cell.locator(".cell-outputs")).to_have_text("56211")
    expect(cell.get_by_role("button", name="Run")).to_be_visible()

    page.reload()
    turns = page.locator(".turn")
    expect(turns).to_have_count(2)
    expect(turns.nth(0).locator(".msg-user")).to_have_text("What is 123 * 456?")
    expect(turns.nth(0).locator(".cell-model textarea")).to_have_value("print(123 * 457)")
    expect(turns.nth(0).locator(".cell-model .cell-outputs")).to_have_text("56211")
    expect(turns.nth(0).locator(".msg-assistant")).to_contain_text("56088")
    expect(turns.nth(1).locator(".msg-user")).to_have_text("What is 2 + 3?")
    expect(page.locator("#container-id")).to_have_text(container)
    conversations = page.get_by_role("navigation", name="Conversations")
    expect(
        conversations.get_by_role("button", name=re.compile(r"^What is 123 \* 456\?"))
    ).to_be_visible()
    shoot(page, request.node.name, "reloaded-1280")


def test_upload_a_csv_and_ask_for_its_summary(page: Page, request) -> None:
    page.goto("/")
    page.locator("#file-input").set_input_files(
        files=[FilePayload(name="sales.csv", mimeType="text/csv", buffer=SALES.encode())]
    )
    files = page.get_by_role("complementary", name=re.compile("Files"))
    expect(files.get_by_role("link", name="sales.csv")).to_be_visible()

    turn = ask(page, "I uploaded sales.csv. Summarise it: rows, columns and the mean of price.")
    cell = turn.locator(".cell-model")
    expect(cell.locator("textarea")).to_have_value(re.compile(r"read_csv\(.*sales\.csv"))
    outputs = cell.locator(".cell-outputs")
    expect(outputs).to_contain_text("(20, 3)")
    expect(outputs).to_contain_text(repr(PRICE_MEAN))
    expect(turn.locator(".msg-assistant")).to_contain_text("20 rows")
    shoot(page, request.node.name, "csv-1280")
