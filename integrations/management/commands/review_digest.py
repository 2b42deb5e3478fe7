from django.core.management.base import BaseCommand

from integrations.services.digest import review_digest


class Command(BaseCommand):
    help = "Mail each owner (assignee, else the customer's account manager) the review items waiting for them."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        result = review_digest()
        self.stdout.write(f"mailed {result['owners']} owners about {result['items']} open review items")
