from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lts_web.settings")
application = get_wsgi_application()
# Import every view now, while the server starts, not on a user's first request: the views pull in torch and
# transformers (the zoo's services, the playground's prompt checks), ~4 s on 2 cores, which stalled every request
# that reached a fresh worker (p99 5.7 s in bench/api.py http).
get_resolver().url_patterns  # noqa: B018 - reading it imports every view, which is the point
