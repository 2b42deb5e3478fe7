"""The daily review-queue digest: one mail per owner (the assignee, else the customer's account
manager) with what waits for them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.core.mail import send_mail
from django.db.models import Count, Min

from integrations.models import ReviewItem


def review_digest() -> dict[str, int]:
    rows = (
        ReviewItem.objects.filter(status=ReviewItem.Status.OPEN)
        .values(
            "assignee__email",
            "integration__customer__account_manager__email",
            "integration__customer__name",
            "integration__name",
        )
        .annotate(n=Count("id"), oldest=Min("opened_at"))
    )
    per_owner: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        owner = row["assignee__email"] or row["integration__customer__account_manager__email"]
        if owner:
            per_owner[owner].append(row)
    for owner, items in per_owner.items():
        total = sum(r["n"] for r in items)
        lines = [
            f"- {r['integration__customer__name']} / {r['integration__name']}: "
            f"{r['n']} open, oldest since {r['oldest']:%Y-%m-%d %H:%M} UTC"
            for r in sorted(items, key=lambda r: -r["n"])
        ]
        send_mail(
            f"[Syncdesk] {total} records wait in the review queue",
            "Open review items for you:\n\n" + "\n".join(lines) + "\n\nOpen the review queue to work them.",
            None,
            [owner],
        )
    return {"owners": len(per_owner), "items": sum(r["n"] for v in per_owner.values() for r in v)}
