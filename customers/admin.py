from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from customers.models import Customer
from integrations.admin import ReasonAdminMixin


@admin.register(Customer)
class CustomerAdmin(ReasonAdminMixin, SimpleHistoryAdmin):
    list_display = ["name", "slug", "status", "account_manager", "time_zone"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
