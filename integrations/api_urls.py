"""Operations API (JSON, token auth, OpenAPI at /api/openapi.json). See integrations/views_api.py."""

from django.urls import path

from integrations import views_api as api

urlpatterns = [
    path("openapi.json", api.openapi, name="api_openapi"),
    path("me/", api.me, name="api_me"),
    path("records/", api.records, name="api_records"),
    path("records/resend/", api.records_resend, name="api_records_resend"),
    path("records/<int:record_id>/", api.record, name="api_record"),
    path("records/<int:record_id>/resend/", api.record_resend, name="api_record_resend"),
    path("review-items/", api.review_items, name="api_review_items"),
    path("review-items/bulk/", api.review_bulk, name="api_review_bulk"),
    path("review-items/<int:item_id>/resolve/", api.review_item_resolve, name="api_review_resolve"),
    path("review-items/<int:item_id>/dismiss/", api.review_item_dismiss, name="api_review_dismiss"),
    path("review-groups/", api.review_groups, name="api_review_groups"),
    path("jobs/<int:job_id>/", api.job, name="api_job"),
    path("integrations/<slug:slug>/mappings/", api.mapping_versions, name="api_mapping_versions"),
    path("mappings/<int:version_id>/", api.mapping_version, name="api_mapping_version"),
]
