"""Destination and webhook secrets encrypted at rest (integrations/fields.py).

The columns become text (a Fernet token is longer than the 200 characters webhook secrets had)
and every existing value is encrypted with the first key. Reversible: going back decrypts the
values in place before the columns return to their old types."""

from django.db import migrations

import integrations.fields
import integrations.models

SECRET_COLUMNS = ("destination_secret", "webhook_secret", "webhook_secret_previous")


def _rewrite(apps, schema_editor, convert):
    Integration = apps.get_model("integrations", "Integration")
    table = schema_editor.connection.ops.quote_name(Integration._meta.db_table)
    columns = ", ".join(schema_editor.connection.ops.quote_name(c) for c in SECRET_COLUMNS)
    assignments = ", ".join(f"{schema_editor.connection.ops.quote_name(c)} = %s" for c in SECRET_COLUMNS)
    # Raw SQL: the model field would encrypt or decrypt on its own, and here the stored text
    # itself is what changes.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {columns} FROM {table}")  # noqa: S608 - names quoted, no input
        rows = cursor.fetchall()
        for pk, *values in rows:
            cursor.execute(
                f"UPDATE {table} SET {assignments} WHERE id = %s",  # noqa: S608
                [*(convert(v or "") for v in values), pk],
            )


def encrypt_existing(apps, schema_editor):
    from integrations.fields import PREFIX, encrypt

    _rewrite(apps, schema_editor, lambda v: v if v.startswith(PREFIX) else encrypt(v))


def decrypt_existing(apps, schema_editor):
    from integrations.fields import decrypt

    _rewrite(apps, schema_editor, decrypt)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0009_record_window_override")]

    operations = [
        migrations.AlterField(
            model_name="integration",
            name="destination_secret",
            field=integrations.fields.EncryptedTextField(
                blank=True, help_text="Token or password for the destination. Never shown in full."
            ),
        ),
        migrations.AlterField(
            model_name="integration",
            name="webhook_secret",
            field=integrations.fields.EncryptedTextField(
                default=integrations.models.new_webhook_secret, help_text="Signs inbound webhooks. Never shown in full."
            ),
        ),
        migrations.AlterField(
            model_name="integration",
            name="webhook_secret_previous",
            field=integrations.fields.EncryptedTextField(
                blank=True, help_text="Still accepted during a secret rotation; clear it when done."
            ),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
    ]
