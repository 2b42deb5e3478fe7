"""Re-apply the roles: permissions of models added since 0002 (alerts)."""

from django.db import migrations

from integrations.migrations._roles import create_roles


class Migration(migrations.Migration):
    dependencies = [("integrations", "0006_alerts_and_periodic_runs")]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
