from __future__ import annotations

from django.core.management.base import BaseCommand

from lts_web.services import do_ensure_demo_user


class Command(BaseCommand):
    help = "Create the demo user (admin of team 'demo') if it does not exist; print its password once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, *args, username: str, **options):
        user, password = do_ensure_demo_user(username)
        if password:
            self.stdout.write(self.style.SUCCESS(f"Demo user created. Log in as  {username} / {password}  (shown once)."))
        else:
            self.stdout.write(f"Demo user '{username}' exists (reset its password with: manage.py changepassword {username}).")
