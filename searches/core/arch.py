"""GPT-2 decoder architectures: validation, stable ids, the analytic proxy and model building.

Pure Python (plus transformers for building): imports neither Django nor Celery.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import transformers

__all__ = [
    "ARCH_KEYS",
    "ARCH_LIMITS",
    "Architecture",
    "ArchitectureError",
    "ConfigError",
    "archid",
    "build_config",
    "build_model",
    "non_embedding_params",
    "total_params",
    "validate_field",
]

# The keys that define an architecture (besides arch_type), in the gallery's canonical form.
ARCH_KEYS = ("n_layer", "d_model", "d_inner", "n_head", "vocab_size", "max_sequence_length", "dropatt")
_INT_KEYS = ("n_layer", "d_model", "d_inner", "n_head", "vocab_size", "max_sequence_length")
_ALLOWED_KEYS = frozenset(ARCH_KEYS) | {"arch_type"}
# The largest value of each integer hyperparameter: about twice the largest published dense decoders, so that no real
# GPT-2/GPT-3-class model is refused while a typo (d_model 3e9, n_layer 1e12) is. GPT-3 175B: 96 layers, d_model 12288,
# d_inner 49152, 96 heads; PaLM 540B: 118 layers, d_model 18432, d_inner 73728, 48 heads; Llama 3.1 405B: 126 layers,
# d_model 16384, d_inner 53248, 128 heads, 131,072 positions; Gemma 3: 262,144 tokens of vocabulary. At these limits
# the proxy (1.6e12 non-embedding parameters) still fits the BigIntegerField columns and every value an IntegerField.
ARCH_LIMITS: dict[str, int] = {
    "n_layer": 256,
    "d_model": 32_768,
    "d_inner": 131_072,
    "n_head": 256,
    "vocab_size": 262_144,
    "max_sequence_length": 131_072,
}


class ConfigError(ValueError):
    """A user-supplied document is invalid. ``errors`` maps field name -> message (the web shows them per field)."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class ArchitectureError(ConfigError):
    """An architecture config is invalid. ``errors`` maps field name -> message."""


def validate_field(key: str, value: Any) -> str | None:
    """The message for one bad hyperparameter value, or None. Shared with the search-space validation."""
    if key == "dropatt":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
            return f"must be a number in [0, 1), got {value!r}"
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, got {value!r}"
    if value < 1:
        return f"must be at least 1, got {value}"
    if value > ARCH_LIMITS[key]:
        return f"at most {ARCH_LIMITS[key]:,} (about twice the largest published models), got {value:,}"
    return None


@dataclass(frozen=True, order=True)
class Architecture:
    """A homogeneous GPT-2 decoder (every layer the same)."""

    n_layer: int
    d_model: int
    d_inner: int
    n_head: int
    vocab_size: int = 50257
    max_sequence_length: int = 1024
    dropatt: float = 0.0

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        for key in ARCH_KEYS:
            message = validate_field(key, getattr(self, key))
            if message is not None:
                errors[key] = message
        if not errors and self.d_model % self.n_head != 0:
            errors["n_head"] = f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
        if errors:
            raise ArchitectureError(errors)
        object.__setattr__(self, "dropatt", float(self.dropatt))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        """Build from a JSON-like mapping; unknown keys and a wrong arch_type are errors."""
        if not isinstance(data, Mapping):
            raise ArchitectureError({"config": f"must be a JSON object, got {type(data).__name__}"})
        errors = {k: "unknown hyperparameter" for k in data if k not in _ALLOWED_KEYS}
        if data.get("arch_type", "gpt2") != "gpt2":
            errors["arch_type"] = f"only 'gpt2' is supported, got {data['arch_type']!r}"
        missing = [k for k in ("n_layer", "d_model", "d_inner", "n_head") if k not in data]
        errors.update({k: "this field is required" for k in missing})
        if errors:
            raise ArchitectureError(errors)
        return cls(**{k: v for k, v in data.items() if k != "arch_type"})

    def to_dict(self) -> dict[str, Any]:
        """The canonical config: exactly the keys the released gallery hashes."""
        # Not dataclasses.asdict: its deepcopy made archid 30 us; a search step hashes ~1,000 architectures.
        return {"arch_type": "gpt2", **{key: getattr(self, key) for key in ARCH_KEYS}}

    @cached_property
    def archid(self) -> str:
        """Computed once per instance (the instance is frozen)."""
        return archid(self)

    @property
    def non_embedding_params(self) -> int:
        return non_embedding_params(self)

    @property
    def total_params(self) -> int:
        return total_params(self)


def archid(arch: Architecture) -> str:
    """'gpt2_' + sha1 of the sorted, ASCII JSON config: identical to the microsoft/lts-gpt2-sm gallery ids."""
    blob = json.dumps(arch.to_dict(), sort_keys=True, ensure_ascii=True)
    return "gpt2_" + hashlib.sha1(blob.encode("ascii")).hexdigest()


def non_embedding_params(arch: Architecture) -> int:
    """Exact parameter count of GPT2LMHeadModel minus wte and wpe (lm_head is tied to wte).

    Per layer: ln_1 and ln_2 (2 * 2d), c_attn (d x 3d + 3d), attn c_proj (d x d + d),
    c_fc (d x di + di), mlp c_proj (di x d + d); plus the final ln_f (2d).
    """
    d, di = arch.d_model, arch.d_inner
    per_layer = 4 * d * d + 2 * d * di + 9 * d + di
    return arch.n_layer * per_layer + 2 * d


def total_params(arch: Architecture) -> int:
    """Non-embedding parameters plus token (vocab x d) and position (n_positions x d) embeddings."""
    return non_embedding_params(arch) + (arch.vocab_size + arch.max_sequence_length) * arch.d_model


def build_config(arch: Architecture, **overrides: Any) -> transformers.GPT2Config:
    """A transformers GPT2Config with the architecture's real widths (n_embd, n_inner: the names GPT2Config reads)."""
    from transformers import GPT2Config

    kwargs: dict[str, Any] = dict(
        vocab_size=arch.vocab_size,
        n_positions=arch.max_sequence_length,
        n_embd=arch.d_model,
        n_inner=arch.d_inner,
        n_head=arch.n_head,
        n_layer=arch.n_layer,
        attn_pdrop=arch.dropatt,
        tie_word_embeddings=True,
    )
    if arch.vocab_size <= 50256:
        # GPT2Config's bos/eos default to 50256, outside a smaller vocabulary (transformers warns); the tokenizer
        # of a training run supplies its own ids through overrides.
        kwargs.update(bos_token_id=None, eos_token_id=None)
    kwargs.update(overrides)
    return GPT2Config(**kwargs)


def build_model(arch: Architecture, *, device: str = "cpu", seed: int | None = 0, **overrides: Any) -> transformers.GPT2LMHeadModel:
    """A GPT2LMHeadModel with random weights (seeded), in eval mode. device="meta" allocates nothing."""
    import torch
    from transformers import GPT2LMHeadModel

    config = build_config(arch, **overrides)
    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device):
        model = GPT2LMHeadModel(config)
    return model.eval()
