"""Mapping editor pages (field table, drafts, preview, publish, versions, diff)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
