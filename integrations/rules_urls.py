"""Exception-rule pages (register, what's special, complexity). Owned by the rules work."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
