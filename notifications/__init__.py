"""Notifications when long work ends: team webhooks (delivered on a worker, signed, logged) for searches, training
runs and proxy checks. Browser notifications are the pages' own (lts_web/static/lts_web/notify.js)."""
