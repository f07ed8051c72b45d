"""One sandbox, used as a notebook: state, the scientific stack, typed outputs."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import pytest

from interpreter.sandboxes.outputs import DisplayOutput, ErrorOutput, Output, StreamOutput
from interpreter.sandboxes.sandbox import Sandbox

pytestmark = pytest.mark.docker

StartSandbox = Callable[..., Awaitable[Sandbox]]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_state_lives_across_executions(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox()
    first = await sandbox.execute("x = 21", timeout_s=30)
    assert first.status == "ok"
    assert first.outputs == []
    second = await sandbox.execute("print(x * 2)", timeout_s=30)
    assert second.status == "ok"
    assert second.stdout == "42\n"
    assert second.execution_count == first.execution_count + 1

    result = await sandbox.execute("1+1", timeout_s=30)
    assert result.outputs == [DisplayOutput({"text/plain": "2"}, result.execution_count)]

    # The scientific stack imports, and a plot comes back as a real PNG.
    plot = await sandbox.execute(
        "import numpy as np, pandas as pd, matplotlib.pyplot as plt\n"
        "frame = pd.DataFrame({'x': np.arange(5), 'y': np.arange(5) ** 2})\n"
        "plt.plot(frame.x, frame.y)\n"
        "plt.show()\n"
        "print(int(frame.y.sum()))",
        timeout_s=60,
    )
    assert plot.status == "ok", plot.outputs
    assert plot.stdout == "30\n"
    images = plot.images()
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(PNG_MAGIC)

    # A user's exception is an output, and the kernel carries on.
    failed = await sandbox.execute("1 / 0", timeout_s=30)
    assert failed.status == "error"
    assert isinstance(failed.error, ErrorOutput)
    assert failed.error.ename == "ZeroDivisionError"
    after = await sandbox.execute("x", timeout_s=30)
    assert after.outputs[0] == DisplayOutput({"text/plain": "21"}, after.execution_count)


async def test_outputs_stream_in_order(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox()
    seen: list[Output] = []

    async def on_output(output: Output) -> None:
        seen.append(output)

    result = await sandbox.execute(
        "import sys, time\n"
        "for i in range(3):\n"
        "    print(i, flush=True)\n"
        "    time.sleep(0.05)\n"
        "print('oops', file=sys.stderr, flush=True)\n"
        "'done'",
        timeout_s=30,
        on_output=on_output,
    )
    assert result.status == "ok"
    assert "".join(o.text for o in seen if isinstance(o, StreamOutput) and o.name == "stdout") == (
        "0\n1\n2\n"
    )
    assert result.stdout == "0\n1\n2\n"
    assert result.stderr == "oops\n"
    assert isinstance(seen[-1], DisplayOutput)
    assert seen[-1].data["text/plain"] == "'done'"
