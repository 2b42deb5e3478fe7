"""Source-kind tests borrow the pipeline's real-stack fixtures (worker subprocesses, a clean Redis)."""

from tests.pipeline.conftest import clean_redis, workers  # noqa: F401 - pytest finds fixtures by name here
