"""Text generation from zoo checkpoints: validated sampling settings, a memory-bounded cache of loaded models, and
token-by-token streaming through transformers' own ``generate`` (so greedy output is exactly what ``generate`` gives).

Pure Python + torch/transformers: the generation worker (workers/generation.py) and notebooks call these functions.
"""
from __future__ import annotations

import collections
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from searches.core.arch import ConfigError

__all__ = [
    "GenerationError",
    "GenerationLimits",
    "GenerationResult",
    "LoadedModel",
    "ModelCache",
    "SamplingSettings",
    "encode_prompt",
    "generate",
    "load_model",
]


class GenerationError(ConfigError):
    """Bad sampling settings or prompt, or a checkpoint that cannot generate (errors: field -> message)."""


@dataclass(frozen=True)
class GenerationLimits:
    """Deployment caps (settings LTS_GENERATE_*): a request beyond one is refused with a message naming it."""

    max_new_tokens: int = 256
    max_prompt_chars: int = 4000
    max_prompt_tokens: int = 1024
    time_limit_s: float = 60.0


@dataclass(frozen=True)
class SamplingSettings:
    """How to continue a prompt. greedy=True ignores temperature, top_k and top_p; seed makes sampling repeatable."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    greedy: bool = False
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], limits: GenerationLimits | None = None) -> SamplingSettings:
        """Validate every field (GenerationError with one message per bad field), defaults for missing ones."""
        limits = limits or GenerationLimits()
        errors: dict[str, str] = {}
        unknown = sorted(set(data) - {f.name for f in cls.__dataclass_fields__.values()})
        for name in unknown:
            errors[name] = "unknown setting"
        values: dict[str, Any] = {}
        defaults = cls()

        def number(name: str, kind: type, low: float, high: float | None, *, low_open: bool = False,
                   too_high: str = "") -> None:
            raw = data.get(name, getattr(defaults, name))
            if isinstance(raw, int) and not isinstance(raw, bool) and high is not None and not low <= raw <= high:
                # out of range before any float(): float(10**400) raises OverflowError
                errors[name] = too_high if too_high and raw > high else (
                    f"must be {'>' if low_open else '>='} {low} and <= {high}")
                return
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (kind is int and not float(raw).is_integer()):
                errors[name] = f"must be {'an integer' if kind is int else 'a number'}"
                return
            value = kind(raw)
            if too_high and high is not None and value > high:
                errors[name] = too_high
            elif not math.isfinite(value) or value < low or (low_open and value == low) or (high is not None and value > high):
                errors[name] = f"must be {'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
            else:
                values[name] = value

        number("max_new_tokens", int, 1, limits.max_new_tokens,
               too_high=f"at most {limits.max_new_tokens} (this server's limit, LTS_GENERATE_MAX_NEW_TOKENS)")
        number("temperature", float, 0.0, 100.0, low_open=True)
        number("top_k", int, 0, 100_000)  # 0: no top-k filter
        number("top_p", float, 0.0, 1.0, low_open=True)
        number("repetition_penalty", float, 0.0, 100.0, low_open=True)
        greedy = data.get("greedy", False)
        if not isinstance(greedy, bool):
            errors["greedy"] = "must be true or false"
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            errors["seed"] = "must be an integer from 0 to 2**63 - 1, or null"
        if errors:
            raise GenerationError(errors)
        return cls(**values, greedy=greedy, seed=seed)

    def generate_kwargs(self) -> dict[str, Any]:
        """The arguments of transformers' generate that these settings mean."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens,
                                  "repetition_penalty": self.repetition_penalty}
        if self.greedy:
            kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        else:
            kwargs.update(do_sample=True, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    nbytes: int  # parameters and buffers: what keeping it loaded costs
    load_s: float


def load_model(folder: str | os.PathLike[str]) -> LoadedModel:
    """A zoo checkpoint folder (config.json, model.safetensors, tokenizer files) in eval mode: dropout off, so the
    same seed gives the same text."""
    folder = Path(folder)
    t0 = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise GenerationError({"model": f"the checkpoint has no usable tokenizer ({exc.__class__.__name__}): "
                                        "import it with its tokenizer files to generate from it"}) from None
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise GenerationError({"model": f"the checkpoint cannot be loaded: {exc}"}) from None
    model.eval()
    nbytes = sum(t.numel() * t.element_size() for t in model.parameters())
    nbytes += sum(t.numel() * t.element_size() for t in model.buffers())
    return LoadedModel(model, tokenizer, nbytes, time.perf_counter() - t0)


class ModelCache:
    """Recently used models kept loaded within a byte budget, least recently used evicted first. Keyed by folder
    and the weights' modification time, so a replaced checkpoint is loaded afresh. One model larger than the whole
    budget is still served (and evicted by the next load). Thread-safe."""

    def __init__(self, budget_bytes: int, loader: Callable[[Path], LoadedModel] = load_model):
        self.budget_bytes = budget_bytes
        self._loader = loader
        self._models: collections.OrderedDict[tuple[str, float], LoadedModel] = collections.OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(folder: Path) -> tuple[str, float]:
        weights = [folder / name for name in ("model.safetensors", "pytorch_model.bin") if (folder / name).exists()]
        return str(folder.resolve()), (weights[0].stat().st_mtime if weights else 0.0)

    def get(self, folder: str | os.PathLike[str]) -> tuple[LoadedModel, bool]:
        """(the loaded model, whether it was already loaded)."""
        folder = Path(folder)
        key = self._key(folder)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key], True
            for stale in [k for k in self._models if k[0] == key[0]]:  # an older version of the same folder
                del self._models[stale]
            loaded = self._loader(folder)
            self._models[key] = loaded
            while len(self._models) > 1 and self.used_bytes > self.budget_bytes:
                self._models.popitem(last=False)
            return loaded, False

    @property
    def used_bytes(self) -> int:
        return sum(m.nbytes for m in self._models.values())

    def __len__(self) -> int:
        return len(self._models)


@dataclass
class GenerationResult:
    text: str  # the completion, without the prompt
    token_ids: list[int]  # the new tokens
    prompt_tokens: int
    stopped_by: str  # "eos", "max_new_tokens", "time_limit" or "cancelled"
    time_to_first_token_s: float  # from the call to the first new token (prompt encoding and prefill included)
    generate_s: float  # the whole call
    tokens_per_s: float  # new tokens after the first, per second of decoding (the prefill excluded)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Streamer(BaseStreamer):
    """Receives generate's tokens as they are produced and hands on the text they add, decoding only the last few
    tokens each time (text generation inference's incremental detokenization: a full decode per token cost 15% of a
    small model's speed). Byte-level BPE splits a character over tokens: text ending in an incomplete character
    (U+FFFD) is held back until it completes."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, on_text: Callable[[str, int], None] | None):
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.prompt_seen = False
        self.ids: list[int] = []
        self.times: list[float] = []
        self.prefix_offset = 0  # ids[prefix_offset:read_offset] give the context the new tokens are decoded in
        self.read_offset = 0  # ids before it have been sent as text

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate first sends the prompt
            self.prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        self.times.append(time.perf_counter())
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if self.on_text is None:
            return
        prefix = _decode(self.tokenizer, self.ids[self.prefix_offset:self.read_offset])
        text = _decode(self.tokenizer, self.ids[self.prefix_offset:])
        if len(text) > len(prefix) and (final or not text.endswith("\ufffd")):
            self.on_text(text[len(prefix):], len(self.ids))
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    # decode is typed str | list[str]: a list of sequences gives a list, one sequence (as here) a str.
    return cast(str, tokenizer.decode(ids, skip_special_tokens=True))


class _Stop(StoppingCriteria):
    def __init__(self, should_stop: Callable[[], bool] | None, deadline: float):
        self.should_stop = should_stop
        self.deadline = deadline
        self.reason = ""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        stop = False
        if time.perf_counter() >= self.deadline:
            self.reason, stop = "time_limit", True
        elif self.should_stop is not None and self.should_stop():
            self.reason, stop = "cancelled", True
        flags = torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)
        return cast(torch.BoolTensor, flags)  # a bool tensor: what StoppingCriteria declares


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, limits: GenerationLimits,
                  max_positions: int, max_new_tokens: int) -> list[int]:
    """The prompt's token ids, checked against the limits and the model's context (GenerationError on 'prompt')."""
    if not isinstance(prompt, str) or not prompt:
        raise GenerationError({"prompt": "must be a non-empty string"})
    if len(prompt) > limits.max_prompt_chars:
        raise GenerationError({"prompt": f"{len(prompt):,} characters; at most {limits.max_prompt_chars:,} "
                                         "(LTS_GENERATE_MAX_PROMPT_CHARS)"})
    ids = tokenizer(prompt)["input_ids"]
    if not ids:
        raise GenerationError({"prompt": "encodes to no tokens"})
    if len(ids) > limits.max_prompt_tokens:
        raise GenerationError({"prompt": f"{len(ids):,} tokens; at most {limits.max_prompt_tokens:,} "
                                         "(LTS_GENERATE_MAX_PROMPT_TOKENS)"})
    if len(ids) >= max_positions:
        raise GenerationError({"prompt": f"{len(ids):,} tokens leave no room in the model's context of "
                                         f"{max_positions} tokens"})
    if len(ids) + max_new_tokens > max_positions:
        raise GenerationError({"max_new_tokens": f"the prompt's {len(ids)} tokens plus {max_new_tokens} new ones "
                                                 f"exceed the model's context of {max_positions} tokens"})
    return ids


def generate(loaded: LoadedModel, prompt: str, settings: SamplingSettings, *,
             limits: GenerationLimits | None = None,
             on_text: Callable[[str, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> GenerationResult:
    """Continue the prompt with transformers' generate. on_text(new_text, tokens_so_far) is called as text is
    produced; should_stop() is asked after every token (a client that went away). Seeded sampling is repeatable:
    torch's global generator is seeded right before generate, exactly as a user would do around model.generate."""
    limits = limits or GenerationLimits()
    start = time.perf_counter()
    model, tokenizer = loaded.model, loaded.tokenizer
    max_positions = int(getattr(model.config, "n_positions", None) or model.config.max_position_embeddings)
    ids = encode_prompt(tokenizer, prompt, limits, max_positions, settings.max_new_tokens)
    streamer = _Streamer(tokenizer, on_text)
    stop = _Stop(should_stop, start + limits.time_limit_s)
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else model.config.eos_token_id
    with torch.inference_mode():
        output = model.generate(  # type: ignore[operator]  # GenerationMixin's, which causal LM classes add
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            streamer=streamer, stopping_criteria=[stop], pad_token_id=eos, eos_token_id=eos,
            **settings.generate_kwargs(),
        )
    end = time.perf_counter()
    new_ids = [int(i) for i in output[0, len(ids):].tolist()]
    if stop.reason:
        stopped_by = stop.reason
    elif new_ids and eos is not None and new_ids[-1] == eos:
        stopped_by = "eos"
    else:
        stopped_by = "max_new_tokens"
    first = streamer.times[0] if streamer.times else end
    decode_s = (streamer.times[-1] - first) if len(streamer.times) > 1 else 0.0
    return GenerationResult(
        text=_decode(tokenizer, new_ids), token_ids=new_ids, prompt_tokens=len(ids),
        stopped_by=stopped_by, time_to_first_token_s=first - start, generate_s=end - start,
        tokens_per_s=(len(streamer.times) - 1) / decode_s if decode_s > 0 else 0.0, settings=settings.to_dict(),
    )
