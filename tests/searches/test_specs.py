"""A spec of any JSON shape is a SpecError with field messages, never a TypeError: the REST serializer, the command
line and the orchestrator all hand user JSON to normalize_spec."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from searches.specs import SpecError, normalize_spec

JSON = st.recursive(st.none() | st.booleans() | st.integers(-1000, 10**6) | st.floats(-1e6, 1e6) | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
_SECTIONS = {
    "space": ["n_layer", "d_model", "d_inner", "n_head", "vocab_size", "max_sequence_length", "dropatt"],
    "constraints": ["max_latency", "max_memory", "max_proxy", "min_proxy"],
    "profiling": ["seq_len", "backend", "batch_size", "threads", "mode", "dtype", "max_seconds", "min_repeats"],
    "params": ["init_population", "mutations_per_parent", "num_crossovers", "num_random_mix", "max_unseen",
               "mutation_prob"],
    "budget": ["generations", "max_candidates", "max_hardware_seconds"],
}
# Each top-level field: any JSON, or (for the sections) an object of its own keys holding any JSON.
SPECS = st.fixed_dictionaries({}, optional={
    **{key: JSON for key in ("preset", "objectives", "device", "algorithm", "seed")},
    **{key: st.fixed_dictionaries({}, optional={k: JSON for k in keys}) | JSON for key, keys in _SECTIONS.items()},
})


@pytest.mark.parametrize("change, field", [
    ({"objectives": [["proxy"]]}, "objectives"), ({"objectives": [{"a": 1}, "proxy"]}, "objectives"),
    ({"algorithm": ["random"]}, "algorithm"), ({"algorithm": {}}, "algorithm"), ({"constraints": 6}, "constraints"),
    ({"constraints": [1]}, "constraints"), ({"constraints": True}, "constraints"),
])
def test_type_confusion_is_a_field_message(change, field):
    with pytest.raises(SpecError) as caught:
        normalize_spec({"preset": "tiny", "objectives": ["proxy"], **change})
    assert field in caught.value.errors, caught.value.errors


@given(SPECS)
@example({"objectives": [["proxy"]], "preset": "tiny"})
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_spec_is_valid_or_a_spec_error(data):
    try:
        spec = normalize_spec(data)
    except SpecError as exc:
        assert exc.errors and all(isinstance(m, str) for m in exc.errors.values())
    else:
        assert normalize_spec(spec) == spec  # a normalized spec is its own normal form
