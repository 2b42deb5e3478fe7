from django.core.management.base import BaseCommand

from integrations.services import sweeper


class Command(BaseCommand):
    help = "Hand back records of stopped workers and wake integrations with due records."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        result = sweeper.sweep()
        self.stdout.write(
            f"released {result['released']} stuck records; "
            f"{result['due_integrations']} integrations with due work; woke {result['woken']}"
        )
