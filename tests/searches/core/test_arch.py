"""Architecture ids, the analytic proxy against real models, model building, and the core's layering."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from searches.core.arch import ARCH_KEYS, ARCH_LIMITS, Architecture, ArchitectureError, build_config, build_model
from searches.core.space import PRESETS

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = dict(n_layer=7, d_model=576, d_inner=832, n_head=8, vocab_size=50257, max_sequence_length=1024, dropatt=0.0)


def _counts(model: torch.nn.Module) -> tuple[int, int]:
    """(total, non-embedding) parameters as PyTorch sees them: parameters() yields a tied weight once."""
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    return total, total - embeddings


def test_gallery_example_id_and_proxy() -> None:
    arch = Architecture.from_dict(EXAMPLE)
    assert arch.archid == "gpt2_0e1b5a3c867d6473da270799061f3089a1df5afd"
    assert arch.non_embedding_params == 16_042_240
    assert set(arch.to_dict()) == {"arch_type", *ARCH_KEYS}


def test_archid_ignores_key_order_and_int_vs_float_dropatt() -> None:
    reordered = dict(reversed(list(EXAMPLE.items())), dropatt=0)
    assert Architecture.from_dict(reordered).archid == Architecture.from_dict(EXAMPLE).archid


def test_proxy_equals_instantiated_model_on_200_random_configs() -> None:
    """Meta device: the real module tree without allocating weights (~12 ms a model for gpt2-lts)."""
    every = list(PRESETS["gpt2-lts"])
    picks = np.random.default_rng(0).choice(len(every), size=152, replace=False)
    archs = [every[int(i)] for i in picks] + list(PRESETS["tiny"])  # all 48 of tiny
    assert len({a.archid for a in archs}) == 200
    for arch in archs:
        model = build_model(arch, device="meta", seed=None)
        assert model.lm_head.weight is model.transformer.wte.weight, "lm_head must stay tied to wte"
        assert _counts(model) == (arch.total_params, arch.non_embedding_params), arch


def test_built_model_has_the_architecture_real_shapes() -> None:
    arch = Architecture(n_layer=2, d_model=32, d_inner=96, n_head=4, vocab_size=512, max_sequence_length=64, dropatt=0.1)
    model = build_model(arch)
    config = model.config
    assert (config.n_embd, config.n_inner, config.n_head, config.n_layer) == (32, 96, 4, 2)
    assert (config.n_positions, config.vocab_size, config.attn_pdrop) == (64, 512, 0.1)
    assert len(model.transformer.h) == 2
    block = model.transformer.h[0]
    # GPT-2's Conv1D stores weights as (in, out).
    assert block.attn.c_attn.weight.shape == (32, 96)
    assert block.mlp.c_fc.weight.shape == (32, 96)
    assert block.mlp.c_proj.weight.shape == (96, 32)
    assert model.transformer.wte.weight.shape == (512, 32)
    assert model.transformer.wpe.weight.shape == (64, 32)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert _counts(model) == (arch.total_params, arch.non_embedding_params)
    assert not model.training
    with torch.inference_mode():
        logits = model(torch.zeros((1, 8), dtype=torch.long)).logits
    assert logits.shape == (1, 8, 512)


def test_build_model_is_seeded() -> None:
    arch = Architecture(n_layer=1, d_model=32, d_inner=64, n_head=2, vocab_size=128, max_sequence_length=16)
    a, b, c = build_model(arch, seed=3), build_model(arch, seed=3), build_model(arch, seed=4)
    assert torch.equal(a.transformer.h[0].mlp.c_fc.weight, b.transformer.h[0].mlp.c_fc.weight)
    assert not torch.equal(a.transformer.h[0].mlp.c_fc.weight, c.transformer.h[0].mlp.c_fc.weight)


def test_small_vocabulary_has_no_out_of_range_special_tokens() -> None:
    config = build_config(Architecture(1, 32, 64, 2, vocab_size=8192))
    assert config.eos_token_id is None and config.bos_token_id is None
    assert build_config(Architecture(1, 32, 64, 2)).eos_token_id == 50256


@pytest.mark.parametrize(
    "config, field, fragment",
    [
        ({**EXAMPLE, "n_head": 7}, "n_head", "divisible"),
        ({**EXAMPLE, "n_layer": 0}, "n_layer", "at least 1"),
        ({**EXAMPLE, "d_model": 57.6}, "d_model", "integer"),
        ({**EXAMPLE, "d_inner": True}, "d_inner", "integer"),
        ({**EXAMPLE, "dropatt": 1.0}, "dropatt", "[0, 1)"),
        ({**EXAMPLE, "d_embed": 576}, "d_embed", "unknown"),
        ({**EXAMPLE, "arch_type": "gpt-neo"}, "arch_type", "gpt2"),
        ({"n_layer": 2}, "d_model", "required"),
        ([1, 2], "config", "JSON object"),
    ],
)
def test_invalid_configs_name_the_field(config: object, field: str, fragment: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        Architecture.from_dict(config)  # type: ignore[arg-type]  # bad input on purpose
    assert fragment in info.value.errors[field]
    assert field in str(info.value)


def test_core_imports_neither_django_nor_celery() -> None:
    """Every module of searches.core (subpackages too), imported in a fresh interpreter without DJANGO_SETTINGS_MODULE."""
    code = (
        "import importlib, json, pkgutil, sys, searches.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'searches.core.'): importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in ('django', 'celery', 'kombu'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("key", sorted(ARCH_LIMITS))
def test_every_integer_hyperparameter_has_an_upper_bound(key: str) -> None:
    limit = ARCH_LIMITS[key]
    at_limit = {**EXAMPLE, key: limit, **({"n_head": 1} if key == "d_model" else {}),
                **({"d_model": limit * 4} if key == "n_head" else {})}
    assert getattr(Architecture.from_dict(at_limit), key) == limit
    with pytest.raises(ArchitectureError) as info:
        Architecture.from_dict({**at_limit, key: limit + 1})
    assert info.value.errors[key] == f"at most {limit:,} (about twice the largest published models), got {limit + 1:,}"


def test_the_largest_architecture_fits_the_database_columns() -> None:
    """BigIntegerField holds the proxy and total parameters, PositiveIntegerField each hyperparameter."""
    largest = Architecture(**{k: ARCH_LIMITS[k] for k in ("n_layer", "d_model", "d_inner", "vocab_size",
                                                          "max_sequence_length")}, n_head=ARCH_LIMITS["n_head"])
    assert largest.total_params < 2**63 - 1 and max(ARCH_LIMITS.values()) < 2**31 - 1
