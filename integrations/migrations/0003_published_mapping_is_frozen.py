"""A database trigger so that no code path (bulk update, raw SQL, admin) can edit a published
mapping version: every attempt records the version it used, so that version must never change."""

from django.db import migrations

PG_UP = """
CREATE OR REPLACE FUNCTION syncdesk_freeze_mapping_version() RETURNS trigger AS $$
BEGIN
  IF OLD.status <> 'draft' AND (NEW.spec IS DISTINCT FROM OLD.spec OR NEW.number IS DISTINCT FROM OLD.number
                                OR NEW.integration_id IS DISTINCT FROM OLD.integration_id) THEN
    RAISE EXCEPTION 'published mapping version % cannot be edited; publish a new version', OLD.id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF OLD.status = 'retired' AND NEW.status <> 'retired' THEN
    RAISE EXCEPTION 'retired mapping version % cannot be republished; publish its spec as a new version', OLD.id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER mapping_version_frozen BEFORE UPDATE ON integrations_mappingversion
  FOR EACH ROW EXECUTE FUNCTION syncdesk_freeze_mapping_version();
"""
PG_DOWN = """
DROP TRIGGER IF EXISTS mapping_version_frozen ON integrations_mappingversion;
DROP FUNCTION IF EXISTS syncdesk_freeze_mapping_version();
"""
SQLITE_UP = [
    """CREATE TRIGGER mapping_version_frozen BEFORE UPDATE ON integrations_mappingversion
    FOR EACH ROW WHEN OLD.status <> 'draft' AND (NEW.spec IS NOT OLD.spec OR NEW.number IS NOT OLD.number
                                                  OR NEW.integration_id IS NOT OLD.integration_id)
    BEGIN SELECT RAISE(ABORT, 'published mapping version cannot be edited; publish a new version'); END""",
    """CREATE TRIGGER mapping_version_not_revived BEFORE UPDATE ON integrations_mappingversion
    FOR EACH ROW WHEN OLD.status = 'retired' AND NEW.status <> 'retired'
    BEGIN SELECT RAISE(ABORT, 'retired mapping version cannot be republished'); END""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS mapping_version_frozen",
    "DROP TRIGGER IF EXISTS mapping_version_not_revived",
]


def up(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_UP, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_UP:
            schema_editor.execute(sql)


def down(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_DOWN, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_DOWN:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0002_roles")]
    operations = [migrations.RunPython(up, down)]
