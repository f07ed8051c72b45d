"""Start-up with a model that cannot load stops before any sandbox exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interpreter.api.app import create_app
from model_runner.errors import ModelNotFound
from tests.conftest import docker_containers

pytestmark = [pytest.mark.docker]


async def test_a_missing_model_stops_start_up_and_leaves_no_sandbox(
    make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = make_settings(model=str(tmp_path / "no-such-checkpoint"), pool_size=2)
    app = create_app(settings, cleanup_on_exit=True)
    with pytest.raises(ModelNotFound):
        async with app.router.lifespan_context(app):
            pass
    assert docker_containers(settings.service_name) == []
