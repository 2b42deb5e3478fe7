"""The webhook's URL, alone: included by integrations.urls (for reverse() and the access matrix)
and resolved on its own by WebhookRouteMiddleware, which answers webhooks without the rest of
the middleware chain."""

from django.urls import path

from integrations import webhooks

PREFIX = "/hooks/"

urlpatterns = [
    path(f"{PREFIX.strip('/')}/<slug:slug>/", webhooks.receive, name="webhook"),
]
