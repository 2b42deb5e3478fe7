"""Login: throttled after repeated failures (per username and per address, shared by every
worker through the database), strong passwords required, sessions expire, and a deactivated
user's sessions end at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import password_validation
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.test import Client

from integrations.models import LoginFailure, RoleChange
from integrations.services.users import user_set_active
from tests.conftest import make_user

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery 9"


def login(client: Client, username: str, password: str, ip: str = "10.0.0.1", url: str = "/login/") -> bool:
    response = client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)
    return response.status_code == 302


def test_five_failures_lock_the_username_even_for_the_right_password(users):
    client = Client()
    for _ in range(5):
        assert not login(client, "support-user", "wrong")
    refused = client.post("/login/", {"username": "support-user", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert refused.status_code == 200
    assert "Too many failed logins" in refused.content.decode()
    # From another address too: the lock is on the username.
    assert not login(Client(), "support-user", PASSWORD, ip="10.9.9.9")


def test_the_lock_ends_after_the_window(users):
    client = Client()
    for _ in range(5):
        login(client, "support-user", "wrong")
    LoginFailure.objects.update(created_at=LoginFailure.objects.first().created_at - timedelta(minutes=16))
    assert login(client, "support-user", PASSWORD)


def test_attempts_while_locked_do_not_extend_the_lock(users):
    for _ in range(5):
        login(Client(), "support-user", "wrong")
    for _ in range(10):
        login(Client(), "support-user", "wrong")
    assert LoginFailure.objects.filter(username="support-user").count() == 5


def test_a_successful_login_clears_the_usernames_failures(users):
    for _ in range(4):
        login(Client(), "support-user", "wrong")
    assert login(Client(), "support-user", PASSWORD)
    assert not LoginFailure.objects.filter(username="support-user").exists()


def test_many_failures_from_one_address_lock_that_address(users, settings):
    settings.SYNCDESK_LOGIN_MAX_FAILURES_PER_IP = 6
    for i in range(6):
        login(Client(), f"nobody-{i}", "wrong", ip="10.6.6.6")
    assert not login(Client(), "engineer-user", PASSWORD, ip="10.6.6.6")
    assert login(Client(), "engineer-user", PASSWORD, ip="10.7.7.7")


def test_the_client_address_is_read_from_the_proxy_header_when_configured(users, settings):
    settings.SYNCDESK_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    Client().post("/login/", {"username": "x", "password": "y"}, HTTP_X_FORWARDED_FOR="1.2.3.4, 5.6.7.8")
    assert LoginFailure.objects.get().ip == "5.6.7.8"


def test_the_admin_login_is_throttled_as_well(users):
    client = Client()
    for _ in range(5):
        client.post("/admin/login/", {"username": "admin-user", "password": "wrong"})
    refused = client.post("/admin/login/?next=/admin/", {"username": "admin-user", "password": PASSWORD})
    assert refused.status_code == 200
    assert "Too many failed logins" in refused.content.decode()


def test_weak_passwords_are_refused_by_the_validators(users):
    for weak in ("short", "password123456", "123456789012", "support-user1"):
        with pytest.raises(ValidationError):
            password_validation.validate_password(weak, user=users["support"])


def test_sessions_expire_after_the_configured_age(users, settings):
    client = Client()
    assert login(client, "support-user", PASSWORD)
    assert client.session.get_expiry_age() <= settings.SESSION_COOKIE_AGE <= 8 * 3600
    assert settings.SESSION_COOKIE_HTTPONLY


def test_deactivating_a_user_ends_their_sessions_at_once(users, django_capture_on_commit_callbacks):
    client = Client()
    assert login(client, "support-user", PASSWORD)
    assert client.get("/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        user_set_active(user=users["support"], active=False, acting_user=users["admin"], reason="Left the company")
    assert not any(str(s.get_decoded().get("_auth_user_id")) == str(users["support"].pk) for s in Session.objects.all())
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    change = RoleChange.objects.get(user=users["support"])
    assert change.acting_user == users["admin"]
    assert change.changes == {"is_active": [True, False]}


def test_a_user_deactivated_behind_the_services_back_is_logged_out_on_the_next_request(users):
    client = Client()
    assert login(client, "support-user", PASSWORD)
    User.objects.filter(pk=users["support"].pk).update(is_active=False)
    response = client.get("/records/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_deactivating_in_the_admin_ends_sessions_and_is_recorded(users, django_capture_on_commit_callbacks):
    victim = make_user("support", username="leaver")
    victim_client = Client()
    assert login(victim_client, "leaver", PASSWORD)
    admin = Client()
    admin.force_login(users["admin"])
    page = admin.get(f"/admin/auth/user/{victim.pk}/change/")
    form = page.context["adminform"].form
    data = {
        k: v for k, v in form.initial.items() if v is not None and k not in ("password", "groups", "user_permissions")
    }
    data.update(
        {
            "groups": [g.pk for g in victim.groups.all()],
            "is_active": "",
            "change_reason": "Left the team",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": victim.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": victim.date_joined.strftime("%H:%M:%S"),
        }
    )
    data["is_staff"] = ""
    data["is_superuser"] = ""
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/admin/auth/user/{victim.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    victim.refresh_from_db()
    assert not victim.is_active
    assert victim_client.get("/").status_code == 302
    change = RoleChange.objects.get(user=victim)
    assert change.reason == "Left the team"
    assert change.acting_user == users["admin"]
