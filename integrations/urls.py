from django.urls import include, path

from integrations import hook_urls, views, views_imports, views_review

urlpatterns = [
    path("", views.home, name="home"),
    path("records/", views.record_list, name="records"),
    path("records/<int:record_id>/", views.record_detail, name="record"),
    path("records/<int:record_id>/status/", views.record_status, name="record_status"),
    path("records/<int:record_id>/preview/", views.record_preview, name="record_preview"),
    path("records/<int:record_id>/resend/", views.record_resend, name="record_resend"),
    path("records/<int:record_id>/edit/", views.record_edit, name="record_edit"),
    path("records/<int:record_id>/resolve/", views.record_resolve, name="record_resolve"),
    path("review/", views_review.review_queue, name="review"),
    path("review/group/", views_review.review_group_action, name="review_group_action"),
    path("review/bulk/", views_review.review_bulk, name="review_bulk"),
    path("review/items/<int:item_id>/note/", views_review.review_note, name="review_note"),
    path("review/jobs/<int:job_id>/", views_review.review_job, name="review_job"),
    path("records/backfill/", views_imports.backfill_start, name="backfill_start"),
    path("records/backfill/<int:job_id>/", views_imports.backfill_detail, name="backfill_detail"),
    path("imports/", views_imports.import_list, name="imports"),
    path("imports/<int:batch_id>/", views_imports.import_detail, name="import_detail"),
    *hook_urls.urlpatterns,
    path("rules/", include("integrations.rules_urls")),
    path("mappings/", include("integrations.mapping_urls")),
    path("api/", include("integrations.api_urls")),
]
