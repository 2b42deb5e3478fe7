"""Exception-rule pages (register, one rule, what's special about a customer, complexity)."""

from django.urls import path

from integrations import views_rules

app_name = "rules"

urlpatterns = [
    path("", views_rules.register, name="register"),
    path("new/", views_rules.create, name="create"),
    path("<int:pk>/", views_rules.detail, name="detail"),
    path("<int:pk>/edit/", views_rules.edit, name="edit"),
    path("<int:pk>/review/", views_rules.mark_reviewed, name="review"),
    path("<int:pk>/retire/", views_rules.retire, name="retire"),
    path("customers/<slug:slug>/special/", views_rules.special, name="special"),
    path("complexity/", views_rules.complexity, name="complexity"),
]
