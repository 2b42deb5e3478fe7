from django.urls import include, path

from integrations import views, webhooks

urlpatterns = [
    path("", views.home, name="home"),
    path("hooks/<slug:slug>/", webhooks.receive, name="webhook"),
    path("rules/", include("integrations.rules_urls")),
    path("mappings/", include("integrations.mapping_urls")),
    path("api/", include("integrations.api_urls")),
]
