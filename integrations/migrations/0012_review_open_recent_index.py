"""Two read paths found slow at a million records (bench/ui.py):
- the review queue lists open items newest first: a partial index on (opened_at, id) of open
  items serves it without sorting every open item;
- one integration's newest records (record search by integration, the mapping editor's preview
  of the last 50 records): (integration_id, received_at, id).
Raw SQL (both engines accept it) so that the model state stays as it is."""

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS review_open_recent_idx ON integrations_reviewitem "
    "(opened_at DESC, id DESC) WHERE status = 'open'"
)
CREATE_RECORDS = (
    "CREATE INDEX IF NOT EXISTS record_integration_recent_idx ON integrations_syncrecord "
    "(integration_id, received_at DESC, id DESC)"
)
DROP = "DROP INDEX IF EXISTS review_open_recent_idx"
DROP_RECORDS = "DROP INDEX IF EXISTS record_integration_recent_idx"


class Migration(migrations.Migration):
    dependencies = [("integrations", "0011_sensitive_payload_login_failures_role_changes")]
    operations = [migrations.RunSQL(CREATE, DROP), migrations.RunSQL(CREATE_RECORDS, DROP_RECORDS)]
