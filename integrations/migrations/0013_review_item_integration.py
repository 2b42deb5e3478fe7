"""Review items carry their record's integration, so the review queue filters by customer or by
integration without joining every open item to its record (bench/ui.py: 300-390 ms a page at
1,000,000 records, joining ~50,000 open items to their records).

The column is added empty, filled in one set-based statement, and only then indexed (building
the index once is cheaper than updating it row by row). The backfill only touches rows still
without an integration, so running it again is harmless."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# PostgreSQL: a join the planner may run as a hash join over the records (one pass), instead of
# one index lookup per review item.
BACKFILL_POSTGRESQL = """
UPDATE integrations_reviewitem
SET integration_id = r.integration_id
FROM integrations_syncrecord r
WHERE r.id = integrations_reviewitem.record_id AND integrations_reviewitem.integration_id IS NULL
"""
# Any engine (SQLite): a correlated subquery, one primary-key lookup per review item.
BACKFILL_PORTABLE = """
UPDATE integrations_reviewitem
SET integration_id = (SELECT r.integration_id FROM integrations_syncrecord r WHERE r.id = integrations_reviewitem.record_id)
WHERE integration_id IS NULL
"""


def backfill_integration(apps, schema_editor):
    """Set every review item's integration to its record's (the same statement on every row)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(BACKFILL_POSTGRESQL if connection.vendor == "postgresql" else BACKFILL_PORTABLE)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0012_review_open_recent_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="reviewitem",
            name="integration",
            field=models.ForeignKey(
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="review_items",
                to="integrations.integration",
            ),
        ),
        # Reversed, the column goes away with the field: nothing to undo here.
        migrations.RunPython(backfill_integration, migrations.RunPython.noop, elidable=False),
        migrations.AddIndex(
            model_name="reviewitem",
            index=models.Index(
                condition=models.Q(("status", "open")),
                fields=["integration"],
                name="review_open_integration_idx",
            ),
        ),
    ]
