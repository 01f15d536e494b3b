"""python manage.py lts_import PATH_OR_HUB_ID: copy a Hugging Face GPT-2 checkpoint into the zoo."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from lts_web.models import Membership
from models_zoo import services
from searches.core.arch import ConfigError
from searches.models import Device


class Command(BaseCommand):
    help = ("Import a local Hugging Face GPT-2 checkpoint folder (e.g. one subfolder of microsoft/lts-gpt2-sm) or a "
            "hub id org/name[/subfolder] (online only) into the zoo; prints its archid and proxy.")

    def add_arguments(self, parser):
        parser.add_argument("source", help="a checkpoint folder (any path: this is the operator's shell) or a hub id")
        parser.add_argument("--name", default="")
        parser.add_argument("--user", default="demo")
        parser.add_argument("--team", help="team name (default: the user's first team)")
        parser.add_argument("--revision", help="hub revision (branch, tag or commit)")
        parser.add_argument("--profile", metavar="DEVICE", help="queue a latency/memory measurement on this device")

    def handle(self, *args, **opts):
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"no user {opts['user']!r}: pass --user NAME (make run creates 'demo')")
        memberships = Membership.objects.filter(user=user).select_related("team").order_by("team__name")
        membership = memberships.filter(team__name=opts["team"]).first() if opts["team"] else memberships.first()
        if membership is None:
            raise CommandError(f"{user.username} is not in " + (f"a team {opts['team']!r}" if opts["team"] else "a team"))
        device = None
        if opts["profile"]:
            device = Device.objects.filter(name=opts["profile"]).first()
            if device is None:
                raise CommandError(f"unknown device {opts['profile']!r}: start its profiling worker first")
        try:
            model = services.do_import_model(owner=user, team=membership.team, source=opts["source"], name=opts["name"],
                                             confine=False, revision=opts["revision"], profile_device=device)
        except ConfigError as exc:
            raise CommandError("cannot import: " + "; ".join(exc.errors.values())) from None
        self.stdout.write(f"zoo model #{model.pk} '{model.name}'\n  archid {model.archid}\n"
                          f"  proxy (non-embedding parameters) {model.non_embedding_params:,}\n"
                          f"  total parameters {model.total_params:,}\n  files in {model.folder}")
        if device is not None:
            self.stdout.write(f"  latency/memory measurement queued on {device.name}")
