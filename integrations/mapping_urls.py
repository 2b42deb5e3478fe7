"""Mapping editor pages (field table, drafts, preview, publish, versions, diff)."""

from django.urls import path

from integrations import views_mappings as views

app_name = "mappings"

urlpatterns = [
    path("", views.index, name="index"),
    path("<slug:slug>/", views.detail, name="detail"),
    path("<slug:slug>/draft/", views.draft_edit, name="draft"),
    path("<slug:slug>/draft/text/", views.draft_text, name="draft_text"),
    path("<slug:slug>/draft/preview/", views.preview, name="preview"),
    path("<slug:slug>/draft/publish/", views.draft_publish, name="publish"),
    path("<slug:slug>/draft/discard/", views.draft_discard, name="discard"),
    path("<slug:slug>/versions/", views.versions, name="versions"),
    path("<slug:slug>/diff/", views.diff, name="diff"),
    path("<slug:slug>/rollback/", views.rollback, name="rollback"),
]
