"""What a machine can measure: settings against a device's cores and memory, and the profiler's own guard."""
from __future__ import annotations

import os

import pytest

from searches.core.arch import Architecture
from searches.core.profiling import (
    ProfileSettings,
    ProfilingError,
    child,
    device_limit_errors,
    largest_dims,
    profile,
    runner,
    working_memory_mb,
)
from searches.core.space import PRESETS

SMALL = Architecture(2, 32, 64, 2, vocab_size=256, max_sequence_length=128)
GPT2_SMALL = Architecture(12, 768, 3072, 12)


def test_working_memory_is_the_weights_logits_and_one_layer() -> None:
    mb = working_memory_mb(largest_dims(GPT2_SMALL), 1, 1024)
    assert GPT2_SMALL.total_params * 4 / 2**20 < mb
    assert mb == pytest.approx(475 + 196 + 25, abs=2)
    assert working_memory_mb(largest_dims(GPT2_SMALL), 1, 1024, "bfloat16") == pytest.approx(mb / 2)


def test_largest_dims_of_a_space_are_its_maxima() -> None:
    assert largest_dims(PRESETS["gpt2-lts"]) == {"n_layer": 10, "d_model": 960, "d_inner": 960, "vocab_size": 50257,
                                                 "max_sequence_length": 1024}


def test_threads_at_most_the_registered_cores() -> None:
    hardware = {"cpu_cores_logical": 4, "cpu_cores_usable": 2, "ram_mb": 8000}
    assert device_limit_errors(ProfileSettings(threads=2), None, hardware, device_name="local") == {}
    assert device_limit_errors(ProfileSettings(threads=3), None, hardware, device_name="local") == {
        "threads": "at most 2 (the cores of device 'local')"}
    assert device_limit_errors(ProfileSettings(threads=4), None, {"cpu_cores_logical": 4}, device_name="x") == {}


def test_not_registered_devices_get_the_servers_caps_only() -> None:
    settings = ProfileSettings(threads=300, batch_size=1024, seq_len=1024, max_seconds=700)
    errors = device_limit_errors(settings, largest_dims(GPT2_SMALL), {}, device_name="new", max_threads=256,
                                 max_seconds=600)
    assert errors == {"threads": "at most 256 (this server's limit, LTS_PROFILE_MAX_THREADS)",
                      "max_seconds": "at most 600 seconds (this server's limit, LTS_PROFILE_MAX_SECONDS)"}


def test_the_largest_architecture_must_fit_the_devices_memory() -> None:
    dims = largest_dims(GPT2_SMALL)
    need = working_memory_mb(dims, 4, 1024)
    ok = device_limit_errors(ProfileSettings(batch_size=4), dims, {"ram_mb": need + 1}, device_name="edge")
    assert ok == {}
    errors = device_limit_errors(ProfileSettings(batch_size=4), dims, {"ram_mb": need - 1}, device_name="edge")
    assert set(errors) == {"batch_size"} and "of memory of device 'edge'" in errors["batch_size"]
    # on cuda the GPU's memory counts, when the device registered it
    cuda = ProfileSettings(batch_size=4, device="cuda")
    assert device_limit_errors(cuda, dims, {"ram_mb": 1}, device_name="gpu") == {}
    assert "GPU memory" in device_limit_errors(cuda, dims, {"gpu_memory_mb": 1}, device_name="gpu")["batch_size"]


def _raw_settings(**changes: object) -> ProfileSettings:
    """Settings that bypassed validation (as if built from a row written by other means)."""
    settings = ProfileSettings(seq_len=16, host_wait_s=0)
    for name, value in changes.items():
        object.__setattr__(settings, name, value)
    return settings


def test_profile_forks_nothing_for_more_threads_than_this_machine_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_run_child", lambda *a, **k: pytest.fail("a child was started"))
    with pytest.raises(ProfilingError) as info:
        profile(SMALL, _raw_settings(threads=(os.cpu_count() or 1) + 1))
    assert info.value.reason == "unavailable"
    assert f"threads: at most {os.cpu_count()} (the cores of device 'this machine')" in str(info.value)


class _Pipe:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("threads", [(os.cpu_count() or 1) + 1, 1_000_000])
def test_the_child_refuses_raw_settings_before_starting_threads(monkeypatch: pytest.MonkeyPatch,
                                                                  threads: int) -> None:
    """A payload that never went through profile() (a million threads forked the issue's storm): the child checks
    again, before torch.set_num_threads or any allocation."""
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: pytest.fail(f"set_num_threads({n}) was called"))
    payload = {"arch": SMALL.to_dict(), "settings": {**ProfileSettings(seq_len=16).to_dict(), "threads": threads}}
    pipe = _Pipe()
    child.child_main(pipe, "torch", payload)
    (status, value), = pipe.sent
    if threads <= 1024:  # within the absolute cap: refused by this machine's cores
        assert status == "unavailable" and f"at most {os.cpu_count()}" in value
    else:  # beyond it: refused by the settings themselves
        assert status == "error" and "threads: must be at most 1,024" in value[0]


def test_the_child_refuses_a_forward_larger_than_this_machines_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(child, "_input_ids", lambda *a: pytest.fail("inputs were allocated"))
    big = Architecture(2, 32_768, 64, 2, vocab_size=262_144, max_sequence_length=1024)
    payload = {"arch": big.to_dict(), "settings": ProfileSettings(batch_size=1024, seq_len=1024).to_dict()}
    pipe = _Pipe()
    child.child_main(pipe, "torch", payload)
    (status, value), = pipe.sent
    assert status == "unavailable" and "batch_size x seq_len (1,024 x 1,024) needs at least" in value
