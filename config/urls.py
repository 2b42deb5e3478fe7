from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from integrations import health_views
from integrations.login_throttle import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm

# Both login forms count failures and lock out (integrations/login_throttle.py).
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("", include("integrations.urls")),
]
