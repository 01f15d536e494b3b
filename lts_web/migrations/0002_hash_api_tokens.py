"""API tokens move from rest_framework.authtoken (plaintext keys that never expire) to django-rest-knox (SHA-512
digests with an expiry). A script holding an old key keeps working until the expiry (LTS_TOKEN_TTL_DAYS from now);
the plaintext table is then dropped. rest_framework.authtoken is no longer installed, so its table is read with SQL."""
from __future__ import annotations

from django.db import migrations
from django.utils import timezone

OLD_TABLE = "authtoken_token"


def hash_plaintext_tokens(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS, knox_settings

    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return  # a database made after the change
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name('key')}, user_id FROM {OLD_TABLE}")
        rows = cursor.fetchall()
    AuthToken = apps.get_model("knox", "AuthToken")
    expiry = timezone.now() + knox_settings.TOKEN_TTL
    AuthToken.objects.bulk_create([
        AuthToken(digest=hash_token(key), token_key=key[:CONSTANTS.TOKEN_KEY_LENGTH], user_id=user_id, expiry=expiry)
        for key, user_id in rows
    ])
    schema_editor.execute(f"DROP TABLE {OLD_TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("lts_web", "0001_initial"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [
        # Backwards: nothing to undo (the plaintext keys are gone; the hashed ones stay valid).
        migrations.RunPython(hash_plaintext_tokens, migrations.RunPython.noop),
    ]
