"""``load_generator``: which spec builds which generator, and checkpoints on disk."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from runner_fixtures import collect, greedy, greedy_reference, prompt_of

from model_runner import loading
from model_runner.errors import ModelNotFound, ModelUnavailable
from model_runner.token_map import TokenMap
from model_runner.transformers_backend import TransformersGenerator


def test_loading_module_does_not_import_the_model_stack() -> None:
    code = (
        "import sys\n"
        "import model_runner.loading, model_runner.server, model_runner.engines.runner\n"
        "import model_runner.engines.vllm, model_runner.engines.sglang\n"
        "import model_runner.engines.llamacpp\n"
        "import model_runner.token_map, model_runner.harmony, model_runner.process\n"
        "heavy = {'torch', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_served_specs_name_their_engine() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # nobody listens: the probe fails in one sentence
    try:
        port = sock.getsockname()[1]
        for spec, engine in (
            (f"http://127.0.0.1:{port}/", "model runner"),
            (f"vllm+http://127.0.0.1:{port}", "vLLM server"),
            (f"sglang+http://127.0.0.1:{port}", "SGLang server"),
            (f"llamacpp+http://127.0.0.1:{port}", "llama.cpp server"),
        ):
            with pytest.raises(ModelUnavailable, match=f"No {engine} answers at "):
                loading.load_generator(spec)
        with pytest.raises(ModelNotFound, match="unknown model URL scheme 'tgi\\+http'"):
            loading.load_generator(f"tgi+http://127.0.0.1:{port}")
    finally:
        sock.close()


def test_a_random_spec_builds_the_named_shape() -> None:
    generator = loading.load_generator("random:tiny", device="cpu")
    assert isinstance(generator, TransformersGenerator)
    assert generator.name == "random:tiny"
    config = generator.model.config
    assert (config.vocab_size, config.sliding_window) == (201088, 128)
    assert config.layer_types == ["sliding_attention", "full_attention"]


def test_real_shapes_match_the_model_cards() -> None:
    from model_runner.shapes import gpt_oss_config

    config = gpt_oss_config("gpt-oss-20b")
    assert (config.num_hidden_layers, config.num_local_experts, config.num_experts_per_tok) == (
        24, 32, 4,
    )  # fmt: skip
    assert (config.hidden_size, config.num_attention_heads, config.num_key_value_heads) == (
        2880, 64, 8,
    )  # fmt: skip
    assert (config.head_dim, config.vocab_size, config.sliding_window) == (64, 201088, 128)
    assert config.layer_types[:2] == ["sliding_attention", "full_attention"]
    assert config.rope_parameters["rope_type"] == "yarn"
    big = gpt_oss_config("gpt-oss-120b")
    assert (big.num_hidden_layers, big.num_local_experts) == (36, 128)


def test_real_shapes_have_the_model_cards_parameter_counts() -> None:
    from model_runner.shapes import gpt_oss_config, parameter_count

    # "21B parameters" and "117B" in the model cards.
    assert round(parameter_count(gpt_oss_config("gpt-oss-20b")) / 1e9) == 21
    assert round(parameter_count(gpt_oss_config("gpt-oss-120b")) / 1e9) == 117


@pytest.mark.parametrize("spec", ["random:gpt-oss-1t", "./no/such/folder", "/no/such/folder"])
def test_missing_models_raise_model_not_found(spec: str) -> None:
    with pytest.raises(ModelNotFound):
        loading.load_generator(spec)


def test_an_unknown_hub_id_offline_raises_model_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound):
        loading.load_generator("nobody-here/no-such-model", device="cpu")


def test_demo_without_a_checkpoint_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "DEMO_CHECKPOINT", tmp_path / "checkpoint")
    with pytest.raises(ModelNotFound, match="demo checkpoint"):
        loading.load_generator("demo")


async def test_a_saved_subset_checkpoint_loads_with_its_token_map(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    subset_generator: TransformersGenerator,
    token_map: TokenMap,
) -> None:
    """What the demo trainer does: save_pretrained plus TokenMap.save into one folder."""
    folder = tmp_path / "checkpoint"
    subset_generator.model.save_pretrained(folder)
    token_map.save(folder)
    monkeypatch.setattr(loading, "DEMO_CHECKPOINT", folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)

    try:
        demo = loading.load_generator("demo", device="cpu")
        # The demo model runs on one intra-op thread (too small to split).
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert isinstance(demo, TransformersGenerator)
    assert demo.name == "gpt-oss-demo"
    assert demo.token_map == token_map
    prompt = prompt_of(12, offset=21)
    tokens = await collect(demo.generate(greedy(prompt, 5)))
    assert tokens == greedy_reference(subset_generator, prompt, 5)

    by_path = loading.load_generator(str(folder), device="cpu")
    assert by_path.name == "checkpoint"
