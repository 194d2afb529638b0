"""The operator's routes (scope "admin": EMBEDQ_ADMIN_TOKEN): GET / (the dashboard),
GET /v1/jobs (jobs by status) and POST /v1/jobs/{id}/replay."""

from __future__ import annotations

import logging
from importlib.resources import files

from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from embedq import operations
from embedq.errors import InvalidInput, NotFound
from embedq.jobs import JobStatus
from embedq.qstash.messages import MAX_JOB_ID
from embedq.webhook.auth import ADMIN
from embedq.webhook.responses import error
from embedq.webhook.state import state_of

logger = logging.getLogger(__name__)

MAX_JOBS_LISTED = 500
LISTED_FIELDS = ("id", "content_type", "source_id", "status", "attempts", "last_error", "updated_at")
DASHBOARD_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the page's URL
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; frame-ancestors 'none'",
}


@requires(ADMIN)
async def get_dashboard(request: Request) -> Response:
    page = files("embedq.webhook").joinpath("dashboard.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers=DASHBOARD_HEADERS)


@requires(ADMIN)
async def get_jobs(request: Request) -> Response:
    state = state_of(request)
    status = request.query_params.get("status", JobStatus.DEAD.value)
    if status not in {s.value for s in JobStatus}:
        return error(400, f"status must be one of {', '.join(s.value for s in JobStatus)}")
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError:
        return error(400, "limit must be an integer")
    if not 1 <= limit <= MAX_JOBS_LISTED:
        return error(400, f"limit must be between 1 and {MAX_JOBS_LISTED}")
    jobs = await state.store.recent(JobStatus(status), limit)
    return JSONResponse({"jobs": [{name: job.as_json()[name] for name in LISTED_FIELDS} for job in jobs]})


@requires(ADMIN)
async def post_job_replay(request: Request) -> Response:
    state = state_of(request)
    job_id: int = request.path_params["id"]
    if not 1 <= job_id <= MAX_JOB_ID:
        return error(404, f"job {job_id} does not exist")
    try:
        retried = await operations.retry_job(state.store, job_id)
    except NotFound as exc:
        return error(404, str(exc))
    except InvalidInput as exc:
        return error(409, str(exc))
    logger.info("job replayed", extra={"action": "replay", "job_id": job_id, "merged_into": retried.merged_into})
    return JSONResponse({"id": job_id, "status": str(retried.job.status), "merged_into": retried.merged_into})


routes = [
    Route("/", get_dashboard, methods=["GET"]),
    Route("/v1/jobs", get_jobs, methods=["GET"]),
    Route("/v1/jobs/{id:int}/replay", post_job_replay, methods=["POST"]),
]
