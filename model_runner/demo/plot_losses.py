"""Draw a training run's loss curve (``losses.json``, written by ``train``) to a PNG.

    python -m model_runner.demo.plot_losses RUN_DIR/losses.json docs/demo_model_loss.png

Needs matplotlib, which the model stack does not: run it with any Python that has it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def moving_average(values: list[float], width: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses = zip(*json.loads(source.read_text()), strict=True)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(steps, losses, color="0.8", linewidth=0.6, label="batch loss")
    axis.plot(steps, moving_average(list(losses), 50), color="C0", label="50-step average")
    axis.set_yscale("log")
    axis.set_xlabel("training step")
    axis.set_ylabel("cross-entropy on assistant tokens")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main()
