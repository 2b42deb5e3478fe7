from django.urls import path

from integrations import views

urlpatterns = [
    path("", views.home, name="home"),
]
