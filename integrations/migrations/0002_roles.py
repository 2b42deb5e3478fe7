"""Roles as groups. Permissions are the contract: views and services check these, never group names."""

from django.db import migrations

VIEW_ALL = [
    "customers.view_customer",
    "integrations.view_integration",
    "integrations.view_mappingversion",
    "integrations.view_exceptionrule",
    "integrations.view_syncrecord",
    "integrations.view_syncattempt",
    "integrations.view_reviewitem",
    "integrations.view_recordlink",
    "integrations.view_importbatch",
    "integrations.view_actionlog",
]
SUPPORT = VIEW_ALL + [
    "integrations.resend_syncrecord",
    "integrations.edit_payload_syncrecord",
    "integrations.work_reviewitem",
    "integrations.change_reviewitem",
    "integrations.add_importbatch",
]
ACCOUNT_MANAGER = SUPPORT + [
    "integrations.add_exceptionrule",
    "integrations.change_exceptionrule",
    "integrations.review_exceptionrule",
    "customers.change_customer",
]
ENGINEER = SUPPORT + [
    "integrations.add_mappingversion",
    "integrations.change_mappingversion",
    "integrations.publish_mappingversion",
    "integrations.add_integration",
    "integrations.change_integration",
    "customers.add_customer",
    "customers.change_customer",
]
ROLES = {"support": SUPPORT, "account_manager": ACCOUNT_MANAGER, "engineer": ENGINEER}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations; make them now so groups can use them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(codes):
        found = []
        for code in codes:
            app_label, codename = code.split(".")
            found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return found

    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(perms(codes))
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.set(Permission.objects.all())


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[*ROLES, "admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
        ("customers", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, remove_roles)]
