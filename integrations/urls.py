from django.urls import path

from integrations import views, webhooks

urlpatterns = [
    path("", views.home, name="home"),
    path("hooks/<slug:slug>/", webhooks.receive, name="webhook"),
]
