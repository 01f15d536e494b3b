"""``python manage.py lts_arch``: ids and parameter counts of architecture JSON lines, or samples of a space."""
from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from searches.core.arch import ConfigError
from searches.core.cli import arch_lines, load_space, sample_lines


class Command(BaseCommand):
    help = (
        "Read architecture configs as JSON lines on stdin and write one JSON line each: archid, "
        "non_embedding_params, total_params, valid (or valid=false and the error). "
        "With --sample N, write N uniform samples of --space instead."
    )
    # call_command("lts_arch", stdin=io.StringIO(...)) in tests and scripts.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--space", default="gpt2-lts", help="preset name (gpt2-lts, tiny) or a .json space file; with --sample")
        parser.add_argument("--sample", type=int, metavar="N", help="write N sampled architectures instead of reading stdin")
        parser.add_argument("--seed", type=int, default=1, help="seed of the sampling (default 1)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["sample"] is None:
            arch_lines(options.get("stdin") or sys.stdin, self.stdout)
            return
        try:
            sample_lines(load_space(options["space"]), options["sample"], options["seed"], self.stdout)
        except ConfigError as exc:
            raise CommandError("; ".join(f"--{k}: {v}" if k in ("sample", "seed") else f"{k}: {v}"
                                         for k, v in exc.errors.items())) from None
