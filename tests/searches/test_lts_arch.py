"""``manage.py lts_arch``: the core logic directly, the command through call_command, and one real subprocess."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from searches.core.arch import Architecture
from searches.core.cli import arch_lines
from searches.core.space import PRESETS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = '{"n_layer": 7, "d_model": 576, "d_inner": 832, "n_head": 8, "vocab_size": 50257, "max_sequence_length": 1024, "dropatt": 0.0}'
MIXED_INPUT = "\n".join(
    [
        EXAMPLE,
        "{not json",
        "",
        '{"n_layer": 2, "d_model": 100, "d_inner": 64, "n_head": 8}',
        '{"n_layer": 2, "d_model": 64, "d_inner": 64, "n_head": 8, "d_embed": 64}',
        '{"n_layer": 2, "d_model": 64, "d_inner": 64, "n_head": 8, "dropatt": 2}',
        '{"n_layer": 2, "d_model": 64, "d_inner": 64, "n_head": 8}',
    ]
)


def _run(*args: str, stdin: str = "") -> list[dict]:
    out = io.StringIO()
    call_command("lts_arch", *args, stdin=io.StringIO(stdin), stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_core_reports_every_line_without_stopping() -> None:
    out = io.StringIO()
    invalid = arch_lines(io.StringIO(MIXED_INPUT), out)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert invalid == 4 and len(results) == 6  # the blank line is not an input
    assert [r["valid"] for r in results] == [True, False, False, False, False, True]
    assert [r.get("line") for r in results] == [None, 2, 4, 5, 6, None]


def test_command_reads_json_lines() -> None:
    results = _run(stdin=MIXED_INPUT)
    assert results[0] == {
        "archid": "gpt2_0e1b5a3c867d6473da270799061f3089a1df5afd",
        "non_embedding_params": 16_042_240,
        "total_params": 16_042_240 + (50257 + 1024) * 576,
        "valid": True,
    }
    assert results[1]["error"].startswith("invalid JSON")
    assert "divisible" in results[2]["errors"]["n_head"]
    assert results[3]["errors"] == {"d_embed": "unknown hyperparameter"}
    assert "[0, 1)" in results[4]["errors"]["dropatt"]
    assert results[5]["valid"] and results[5]["archid"] == Architecture(2, 64, 64, 8).archid


def test_command_samples_a_preset_reproducibly() -> None:
    first = _run("--space", "tiny", "--sample", "25", "--seed", "4")
    assert first == _run("--space", "tiny", "--sample", "25", "--seed", "4")
    assert first != _run("--space", "tiny", "--sample", "25", "--seed", "5")
    assert len(first) == 25
    for record in first:
        arch = Architecture.from_dict(record["config"])
        assert arch in PRESETS["tiny"] and record["archid"] == arch.archid and record["valid"]
        assert record["non_embedding_params"] == arch.non_embedding_params


def test_command_accepts_a_space_file(tmp_path: Path) -> None:
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"n_layer": [2], "d_model": "range(64, 129, 64)", "d_inner": [64], "n_head": [4]}))
    configs = {json.dumps(r["config"], sort_keys=True) for r in _run("--space", str(space), "--sample", "40")}
    assert len(configs) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "gpt2-xl", "--sample", "3"], "unknown preset"),
        (["--sample", "-1"], "--sample: must be from 0 to 1,000,000, got -1"),
        (["--sample", str(10**12)], "--sample: must be from 0 to 1,000,000, got 1,000,000,000,000"),
        (["--sample", "1", "--seed", "-1"], "--seed: must be from 0 to 4,294,967,295, got -1"),
        (["--sample", "1", "--seed", str(2**32)], "--seed: must be from 0 to 4,294,967,295"),
        (["--space", "missing.json", "--sample", "1"], "cannot read"),
    ],
)
def test_command_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _run(*args)


def test_command_reports_an_invalid_space_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_layer": [1], "d_model": [96], "d_inner": [64], "n_head": [64]}')
    with pytest.raises(CommandError, match="divisible"):
        _run("--space", str(bad), "--sample", "1")


def test_manage_py_pipes_stdin_to_stdout() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "lts_arch"],
        input=EXAMPLE + "\nnot json\n",
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["valid"] for r in lines] == [True, False]
    assert lines[0]["archid"] == "gpt2_0e1b5a3c867d6473da270799061f3089a1df5afd"
